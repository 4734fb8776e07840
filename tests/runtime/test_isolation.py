"""The runtime stands alone: it never imports training, scikit-learn, skl2onnx or joblib, never unpickles.

Static imports are the import-linter contracts' (tests/contract/test_layers.py); here: no dynamic
import or pickle in the runtime's source, nothing forbidden loaded while serving, and, in the
runtime-only session's install, the training libraries truly absent and a training command that
says how to install them.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import ml_matching.runtime
from tests.conftest import FIXTURE_STORE, RUNTIME_ONLY

RUNTIME = Path(ml_matching.runtime.__file__).parent
TRAINING_LIBS = {"sklearn", "skl2onnx", "joblib"}
# RUNTIME_ONLY: in `nox -s runtime_only`, whose environment has only the base package installed.
runtime_only = pytest.mark.skipif(not RUNTIME_ONLY, reason="only in the runtime-only environment")


@pytest.mark.parametrize("path", sorted(RUNTIME.rglob("*.py")), ids=lambda p: p.name)
def test_runtime_source_has_no_dynamic_import_or_pickle(path: Path) -> None:
    # numpy itself imports pickle, so the source (not sys.modules) is where unpickling is ruled out.
    text = path.read_text()
    for word in ("__import__(", "import_module", "allow_pickle", "pickle"):
        assert word not in text, f"{path.name} mentions {word}"


def test_serving_loads_no_forbidden_module() -> None:
    # Django would come with drf-spectacular-sidecar: the docs assets come from elsewhere.
    unwanted = sorted(TRAINING_LIBS | {"django", "ml_matching.training", "ml_matching.trainer"})
    code = (
        "import sys; from ml_matching.runtime import Settings, create_app; "
        "from pathlib import Path; from litestar.testing import TestClient; "
        f"app = create_app(Settings(models_dir=Path({str(FIXTURE_STORE)!r})));\n"
        "with TestClient(app) as c:\n"
        "    assert c.get('/health/ready').status_code == 200\n"
        "    assert c.post('/predict?explain=true', json={}).status_code == 400\n"
        "    assert c.get('/docs').status_code == 200\n"
        f"bad = sorted(m for m in sys.modules if any(m == u or m.startswith(u + '.') for u in {unwanted!r}))\n"
        "print(bad); assert not bad"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@runtime_only
@pytest.mark.parametrize("module", sorted(TRAINING_LIBS))
def test_runtime_only_environment_lacks_training_libraries(module: str) -> None:
    with pytest.raises(ImportError):
        importlib.import_module(module)


@runtime_only
def test_training_without_the_extra_names_the_install_command() -> None:
    with pytest.raises(ImportError, match=r"pip install 'ml-matching\[train\]'"):
        importlib.import_module("ml_matching.training").fit_and_publish  # noqa: B018


@runtime_only
def test_a_training_command_without_the_extra_says_how_to_install_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ml_matching", "fit", "--data", str(tmp_path / "d.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "pip install 'ml-matching[train]'" in done.stderr and "Traceback" not in done.stderr
