"""The trainer service: outcomes in, retrained and gated versions out (``python -m training serve``).

Web-only: nothing else in ``training`` imports it.
"""

from __future__ import annotations

from training.trainer.app import create_app
from training.trainer.settings import TrainerSettings

__all__ = ["TrainerSettings", "create_app"]
