"""The reference pages of the docs are what the code makes of them (scripts/reference.py)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference", ROOT / "scripts" / "reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _reference()
UV = os.environ.get("UV") or shutil.which("uv") or str(Path(sys.executable).parent / "uv")


@pytest.mark.train
@pytest.mark.parametrize("name", sorted(reference.PAGES))
def test_committed_page_is_what_the_code_makes(name: str) -> None:
    if name == "runtime-packages.md" and not Path(UV).exists():
        pytest.skip("uv is needed to list the runtime's packages (nox sets UV)")
    committed = (ROOT / "docs" / "reference" / name).read_text(encoding="utf-8")
    assert committed == reference.render(name), f"run `python scripts/reference.py` (docs/reference/{name})"


@pytest.mark.train
def test_the_configuration_page_lists_every_variable_of_both_services() -> None:
    from ml_matching.contract.settings import variables
    from ml_matching.runtime import Settings
    from ml_matching.trainer import TrainerSettings

    page = (ROOT / "docs" / "reference" / "configuration.md").read_text()
    for cls in (Settings, TrainerSettings):
        for variable, _ in variables(cls):
            assert f"| `{variable.name}` |" in page
