"""Example models following the model contract (docs/contracts.md): `build(hp, spec, task)`."""
