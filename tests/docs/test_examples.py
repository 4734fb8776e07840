"""Every example the READMEs and the docs show, run as a newcomer runs it (``scripts/examples.py``).

It is one long test (about four minutes), so it starts first, on a worker of its own, while the
other workers share the rest of the suite; ``nox -s examples`` runs the same script alone (and
``-- --update`` rewrites the expected outputs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.train  # the README's install has the train extra; the runtime-only session leaves it out
@pytest.mark.first
def test_every_documented_example_runs_as_written() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "examples.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20 * 60,
    )
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
