"""The trainer service: outcomes in, retrained and gated versions out (``ml-matching trainer``).

It stores outcomes durably, retrains every RETRAIN_EVERY new ones in a worker process, and
promotes a version only when the gate finds it not worse. It imports the contract, the HTTP kit and
training, never the runtime. The names below are imported when first used, so a command that only
talks to a trainer (``ml-matching experiment``) needs neither the service nor the train extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"Trainer": "service", "TrainerSettings": "settings", "create_app": "app"}

__all__ = ["Trainer", "TrainerSettings", "create_app"]

if TYPE_CHECKING:
    from ml_matching.trainer.app import create_app
    from ml_matching.trainer.service import Trainer
    from ml_matching.trainer.settings import TrainerSettings


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"ml_matching.trainer.{_EXPORTS[name]}"), name)
