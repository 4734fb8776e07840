"""Fixtures the end-to-end experiment tests share (each module gives its own ``models`` and ``trainer``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability import fleet
from tests.support import Service


@pytest.fixture
def replicas(models: Path, trainer: Service) -> Iterator[list[Service]]:
    """Two runtime replicas on the module's store, sending their ledger to its trainer."""
    services = fleet.replicas(models, trainer)
    yield services
    for s in services:
        s.stop()
