"""Every import arrow in the package points the way docs/architecture.md draws it.

Each source file belongs to one wing; each wing names the wings it may import. An import under
`if TYPE_CHECKING:` is left out (it never runs: `workflow.backend` names both platforms only so
that mypy checks they implement its Protocol). Dynamic imports (`importlib`) are not arrows of
the picture either: the backend is chosen by configuration, the user's model by name.
"""
import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# --- The Airflow side: plugins/tune_serve, the plugin entry point and the DAG file.
# The root modules (config, errors, storage, client) are the base every wing stands on.
AIRFLOW_ROOT = "tune_serve"
AIRFLOW_MAY_IMPORT = {
    "root": {"root"},
    "serving": {"root", "serving"},
    "workflow": {"root", "serving", "workflow"},
    "local": {"root", "serving", "workflow", "local"},
    "kubernetes": {"root", "serving", "workflow", "kubernetes"},
    "web": {"root", "serving", "workflow", "web"},
    "plugin": {"root", "workflow", "web"},  # plugins/tune_serve_plugin.py: what Airflow loads
    "dag": {"root", "workflow"},  # dags/: never a platform, never a web surface
}
AIRFLOW_WINGS = set(AIRFLOW_MAY_IMPORT) - {"root", "plugin", "dag"}

# --- The trainer: include/trainer/trainer. Search algorithms know nothing of how trials travel;
# the distributed wire knows nothing of the steps that use it. The model SDK (trainer/sdk/), what
# models import, stands below everything and imports only itself.
TRAINER_MAY_IMPORT = {
    "sdk": {"sdk"},
    "algorithms": {"algorithms", "base", "sdk"},
    "distributed": {"algorithms", "distributed", "tuning", "base", "sdk"},
    "tuning": {"algorithms", "distributed", "tuning", "base", "sdk"},
    "base": {"algorithms", "distributed", "tuning", "base", "sdk"},  # the steps outside tuning/
}
MODELS = REPO / "include" / "models"
BUILT_IN_MODELS = "tune_serve_models"


def _imports(path: Path) -> set[str]:
    """Every module `path` imports at run time (not under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


def _airflow_wing_of_module(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != AIRFLOW_ROOT:
        return None
    if len(parts) > 1 and parts[1] in AIRFLOW_WINGS:
        return parts[1]
    # `from tune_serve import workflow` names a wing as such; anything else is a root module
    return "root"


def _airflow_files() -> dict[Path, str]:
    package = REPO / "plugins" / "tune_serve"
    files = {}
    for path in package.rglob("*.py"):
        top = path.relative_to(package).parts
        files[path] = top[0] if len(top) > 1 and top[0] in AIRFLOW_WINGS else "root"
    files[REPO / "plugins" / "tune_serve_plugin.py"] = "plugin"
    files |= {path: "dag" for path in (REPO / "dags").glob("*.py")}
    return files


def _trainer_wing(parts: list[str]) -> str:
    """`parts` of a module under `trainer` (without the leading `trainer`)."""
    if parts[:1] == ["tuning"]:
        return parts[1] if len(parts) > 2 and parts[1] in ("algorithms", "distributed") else "tuning"
    return "sdk" if parts[:1] == ["sdk"] else "base"


def _trainer_files() -> dict[Path, str]:
    package = REPO / "include" / "trainer" / "trainer"
    return {path: _trainer_wing(list(path.relative_to(package).with_suffix("").parts))
            for path in package.rglob("*.py")}


def _wrong_way(files: dict[Path, str], wing_of, may_import) -> list[str]:
    found = []
    for path, wing in sorted(files.items()):
        for name in sorted(_imports(path)):
            target = wing_of(name)
            if target is not None and target not in may_import[wing]:
                found.append(f"{path.relative_to(REPO)} ({wing}) imports {name} ({target})")
    return found


def test_the_airflow_side_imports_only_downwards():
    assert _wrong_way(_airflow_files(), _airflow_wing_of_module, AIRFLOW_MAY_IMPORT) == []


def _trainer_wing_of_module(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "trainer":
        return None
    # `from trainer.tuning import distributed` names the wing; `from trainer.tuning.x import y` its module
    parts = parts[1:]
    if parts[:1] == ["tuning"] and len(parts) == 2 and parts[1] in ("algorithms", "distributed"):
        return parts[1]
    return _trainer_wing(parts + ["_"]) if parts[:1] == ["tuning"] and len(parts) >= 2 else _trainer_wing(parts)


def test_the_trainer_imports_only_downwards():
    assert _wrong_way(_trainer_files(), _trainer_wing_of_module, TRAINER_MAY_IMPORT) == []


def test_search_algorithms_never_reach_the_wire_or_the_steps():
    """The one rule that matters most for swapping an algorithm: it is a Keras Tuner Oracle and
    nothing else (the leases, the RPC and the steps wrap it from above)."""
    files = {p: w for p, w in _trainer_files().items() if w == "algorithms"}
    assert files, "trainer/tuning/algorithms/ is empty"
    assert _wrong_way(files, _trainer_wing_of_module, TRAINER_MAY_IMPORT) == []


@pytest.mark.parametrize("side,other", [("plugins", "trainer"), ("include/trainer", "tune_serve")])
def test_the_two_sides_meet_only_in_the_contract(side, other):
    found = [f"{p.relative_to(REPO)} imports {n}" for p in sorted((REPO / side).rglob("*.py"))
             for n in _imports(p) if n == other or n.startswith(other + ".")]
    assert found == []


def test_the_contract_imports_only_the_standard_library():
    package = REPO / "include" / "contract" / "tune_contract"
    found = [f"{p.name} imports {n}" for p in sorted(package.rglob("*.py")) for n in _imports(p)
             if n.split(".")[0] in {"tune_serve", "trainer", "airflow", "tensorflow", "keras"}]
    assert found == []


def test_the_platforms_never_import_each_other():
    files = {p: w for p, w in _airflow_files().items() if w in ("local", "kubernetes")}
    assert _wrong_way(files, _airflow_wing_of_module, AIRFLOW_MAY_IMPORT) == []


def test_only_the_renderer_imports_the_renderer():
    found = [str(p.relative_to(REPO)) for p in _airflow_files() if "tune_serve.kubernetes.render" in _imports(p)]
    assert found == []


# --- The model SDK and the models folder: no loop between the trainer and the built-in model.


def test_the_model_sdk_imports_nothing_of_the_trainer_but_itself():
    files = {p: w for p, w in _trainer_files().items() if w == "sdk"}
    assert files, "trainer/sdk/ is empty"
    assert _wrong_way(files, _trainer_wing_of_module, TRAINER_MAY_IMPORT) == []
    # nor any model (the built-in one included), nor anything but the contract, Keras and TF
    allowed = {"trainer", "tune_contract", "keras", "tensorflow", "__future__"}
    found = [f"{p.relative_to(REPO)} imports {n}" for p in sorted(files) for n in _imports(p)
             if n.split(".")[0] not in allowed and n.split(".")[0] not in sys.stdlib_module_names]
    assert found == []


def test_the_shipped_models_import_only_the_sdk_from_the_trainer():
    files = sorted(MODELS.rglob("*.py"))
    assert files
    found = [f"{p.relative_to(REPO)} imports {n}" for p in files for n in _imports(p)
             if n.split(".")[0] == "trainer" and n != "trainer.sdk" and not n.startswith("trainer.sdk.")]
    assert found == []


def test_the_trainer_finds_the_built_in_model_only_by_its_contract_name():
    """No import of the models folder, and no spelling of its package outside docstrings: the
    name is tune_contract.enums.DEFAULT_MODEL, loaded like any model (trainer.user_model.load)."""
    found = []
    for path in sorted((REPO / "include" / "trainer").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        found += [f"{path.relative_to(REPO)} imports {n}" for n in _imports(path)
                  if n.split(".")[0] == BUILT_IN_MODELS]
        found += [f"{path.relative_to(REPO)}:{node.lineno} spells {node.value!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and BUILT_IN_MODELS in node.value and id(node) not in docstrings]
    assert found == []
