"""Fixtures the end-to-end experiment tests share (each module gives its own ``models`` and ``trainer``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Service


@pytest.fixture
def replicas(models: Path, trainer: Service) -> Iterator[list[Service]]:
    """Two runtime replicas on the module's store, sending their ledger to its trainer."""
    from tests.reliability import fleet  # imports the trainer's side: not in the runtime-only session

    services = fleet.replicas(models, trainer)
    yield services
    for s in services:
        s.stop()
