"""The trainer service: outcomes in, retrained and gated versions out (``ml-matching trainer``).

It stores outcomes durably, retrains every RETRAIN_EVERY new ones in a worker process, and
promotes a version only when the gate finds it not worse. It imports the contract, the HTTP kit and
training, never the runtime.
"""

from __future__ import annotations

from ml_matching.trainer.app import create_app
from ml_matching.trainer.service import Trainer
from ml_matching.trainer.settings import TrainerSettings

__all__ = ["Trainer", "TrainerSettings", "create_app"]
