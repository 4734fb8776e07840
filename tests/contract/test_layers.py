"""The rooms import only what the table in ``ml_matching/__init__.py`` allows (import-linter).

The contracts are in pyproject.toml's ``[tool.importlinter]``; ``lint-imports`` checks them on the
installed package, and the second test shows that adding a forbidden import breaks them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import ml_matching

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(ml_matching.__file__).parent


def _lint_imports(pythonpath: Path | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:  # found before the installed package
        env["PYTHONPATH"] = str(pythonpath)
    command = [str(Path(sys.executable).parent / "lint-imports"), str(ROOT / "pyproject.toml")]
    return subprocess.run(
        [*command, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_every_room_keeps_its_import_rules() -> None:
    done = _lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 kept, 0 broken" in done.stdout


def test_a_forbidden_import_breaks_the_rules(tmp_path: Path) -> None:
    copy = tmp_path / "ml_matching"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    scoring = copy / "runtime" / "scoring.py"
    scoring.write_text(scoring.read_text() + "\nimport sklearn  # a forbidden import\n")
    http = copy / "http" / "requests.py"
    http.write_text(http.read_text() + "\nfrom ml_matching.runtime import Settings  # another\n")
    done = _lint_imports(pythonpath=tmp_path, cwd=tmp_path)
    assert done.returncode != 0
    assert (
        "runtime imports the contract and http, never training, scikit-learn or pickle BROKEN" in done.stdout
    )
    assert "ml_matching.runtime.scoring -> sklearn" in done.stdout
    assert "http imports only the contract BROKEN" in done.stdout
    # The trainer imports http, so it now reaches the runtime too: an indirect import is caught.
    assert "trainer imports the contract, http and training, never the runtime BROKEN" in done.stdout
    assert "contract imports nothing else of ml-matching KEPT" in done.stdout
