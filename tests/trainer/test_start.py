"""What the trainer's web process loads at start: the service, not the training side. Its jobs
train in worker processes; importing scikit-learn, skl2onnx and matplotlib at start cost it 1.4 s of
CPU and 180 MB it kept for its whole life."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ml_matching.training import EXTRA_PACKAGES

# What `ml-matching trainer` does before uvicorn serves the app (trainer/commands.py's serve).
START = """
import sys
from ml_matching.trainer.app import create_app
from ml_matching.trainer.settings import TrainerSettings
from ml_matching.training import EXTRA_PACKAGES, require_extra

require_extra()
create_app(TrainerSettings.from_environ({"MODELS_DIR": sys.argv[1]}))
print(" ".join(m for m in EXTRA_PACKAGES if m in sys.modules))
"""


def test_the_trainer_checks_the_train_extra_without_importing_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", START, str(tmp_path / "store")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    # SciPy is the web process's own: the experiments' statistics (trainer/sequential.py) use it.
    assert done.stdout.split() == ["scipy"], f"imported at start: {done.stdout}"
    assert "sklearn" in EXTRA_PACKAGES and "matplotlib" in EXTRA_PACKAGES  # the check covers them
