"""The runtime stands alone: it never imports training, scikit-learn, skl2onnx or joblib, never unpickles."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
TRAINING_LIBS = {"training", "sklearn", "skl2onnx", "joblib"}
# numpy itself imports pickle, so the source (not sys.modules) is where unpickling is ruled out.
FORBIDDEN = TRAINING_LIBS | {"pickle", "cloudpickle", "dill"}
# Set by `nox -s runtime_only`, whose environment has only the base package installed.
runtime_only = pytest.mark.skipif(
    not os.environ.get("ML_MATCHING_RUNTIME_ONLY"), reason="only in the runtime-only environment"
)


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(RUNTIME.rglob("*.py")), ids=lambda p: p.name)
def test_runtime_source_imports_nothing_forbidden(path: Path) -> None:
    assert _imported_modules(path) & FORBIDDEN == set()
    text = path.read_text()
    assert "__import__(" not in text and "import_module" not in text and "allow_pickle" not in text


def test_serving_loads_no_forbidden_module() -> None:
    # Django comes with the docs assets' package; only its files are read.
    unwanted = sorted(TRAINING_LIBS | {"django", "drf_spectacular_sidecar"})
    code = (
        "import sys; from runtime.web import create_app; from runtime.settings import Settings; "
        "from pathlib import Path; from litestar.testing import TestClient; "
        "app = create_app(Settings(models_dir=Path('tests/fixtures/store')));\n"
        "with TestClient(app) as c:\n"
        "    assert c.get('/health/ready').status_code == 200\n"
        "    assert c.get('/docs').status_code == c.get('/docs/assets/swagger-ui-dist/swagger-ui.css').status_code == 200\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {unwanted!r}); print(bad); assert not bad"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=RUNTIME.parent, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


@runtime_only
@pytest.mark.parametrize("module", ["sklearn", "skl2onnx", "joblib"])
def test_runtime_only_environment_lacks_training_libraries(module: str) -> None:
    with pytest.raises(ImportError):
        importlib.import_module(module)


@runtime_only
def test_training_without_the_extra_names_the_install_command() -> None:
    with pytest.raises(ImportError, match=r"pip install -e '\.\[train\]'"):
        importlib.import_module("training")
