"""The Airflow side's layers: each platform package stands alone, the offline renderer sits on
top of the kubernetes one, and nothing reaches into the trainer."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "tune_serve"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


def _importers(prefix: str) -> dict[str, set[str]]:
    return {str(p.relative_to(PACKAGE)): {n for n in _imports(p) if n == prefix or n.startswith(prefix + ".")}
            for p in PACKAGE.rglob("*.py")}


def test_the_platforms_never_import_each_other():
    assert {f: n for f, n in _importers("tune_serve.local").items() if f.startswith("kubernetes/") and n} == {}
    assert {f: n for f, n in _importers("tune_serve.kubernetes").items() if f.startswith("local/") and n} == {}


def test_only_the_renderer_imports_the_renderer():
    assert {f: n for f, n in _importers("tune_serve.kubernetes.render").items() if n} == {}


def test_the_airflow_side_never_imports_the_trainer():
    assert {f: n for f, n in _importers("trainer").items() if n} == {}
