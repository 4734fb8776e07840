"""Training's public surface, and its dependency on the runtime through public names only."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import training

TRAINING = Path(training.__file__).parent


def test_training_public_surface() -> None:
    assert sorted(training.__all__) == [
        "Candidate", "Dataset", "FitResult", "TrainConfig", "fit_and_publish", "load_config", "load_dataset",
        "publish", "synthesize", "train_candidates",
    ]  # fmt: skip
    for name in training.__all__:
        assert getattr(training, name).__module__.startswith("training.")


def _runtime_imports(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "runtime":
            found.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, "") for alias in node.names if alias.name.split(".")[0] == "runtime")
    return found


@pytest.mark.parametrize("path", sorted(TRAINING.rglob("*.py")), ids=lambda p: str(p.relative_to(TRAINING)))
def test_training_uses_only_the_runtimes_public_names(path: Path) -> None:
    for module, name in _runtime_imports(path):
        allowed = ("runtime", "runtime.artifact", "runtime.web", "runtime.contracts")
        assert module in allowed, f"{path.name} imports {module}: use one of {allowed}"
        public = importlib.import_module(module).__all__
        assert name in public, f"{path.name} imports {name} from {module}, which does not export it"
