"""Fixtures the end-to-end experiment tests share: a store with three versions of one feature set,
a trainer that never retrains by itself, two replicas (a module may give its own ``models`` and
``trainer``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Service


@pytest.fixture
def trainer(models: Path, tmp_path: Path) -> Iterator[Service]:
    from tests.trainer.conftest import trainer_service  # the trainer's side: not in the runtime-only session
    from tests.training.conftest import FAST_CONFIG

    config = tmp_path / "train.json"
    config.write_text(json.dumps(FAST_CONFIG))
    service = trainer_service(
        models, config, tmp_path, RETRAIN_EVERY="0", OUTCOMES_DB=str(tmp_path / "o.sqlite")
    )
    service.start()
    yield service
    service.stop()


@pytest.fixture
def replicas(models: Path, trainer: Service) -> Iterator[list[Service]]:
    """Two runtime replicas on the module's store, sending their ledger to its trainer."""
    from tests.reliability import fleet  # imports the trainer's side: not in the runtime-only session

    services = fleet.replicas(models, trainer)
    yield services
    for s in services:
        s.stop()
