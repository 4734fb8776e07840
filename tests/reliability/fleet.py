"""What the end-to-end experiment tests share: runtime replicas that follow a trainer, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import Service, runtime_service
from tests.trainer.conftest import TOKEN


def replicas(models: Path, trainer: Service, n: int = 2) -> list[Service]:
    """``n`` runtimes on ``models`` that send their ledger to ``trainer`` and follow the store fast."""
    env = {
        "ML_TRAINER_URL": f"http://127.0.0.1:{trainer.port}",
        "MODEL_WATCH_SECONDS": "0.2",
        "LOG_LEVEL": "INFO",
    }
    return [runtime_service(models, **env).start() for _ in range(n)]


def experiment_cli(trainer: Service, *args: str) -> subprocess.CompletedProcess[str]:
    """``ml-matching experiment ARGS`` against ``trainer``, with its admin token."""
    return trainer_cli(trainer, "experiment", *args)


def trainer_cli(trainer: Service, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``ml-matching COMMAND ARGS`` against ``trainer``, with its admin token."""
    env = {
        **os.environ,
        "ML_TRAINER_URL": f"http://127.0.0.1:{trainer.port}",
        "ML_SERVICE_ADMIN_TOKEN": TOKEN,
    }
    line = [sys.executable, "-m", "ml_matching", command, *args]
    return subprocess.run(line, env=env, capture_output=True, text=True, timeout=120)
