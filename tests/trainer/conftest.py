"""The trainer under test: small, fast models, a store of its own, real processes where it matters."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.contract import StorageFull, default_feature_set
from ml_matching.trainer import TrainerSettings, create_app, database
from ml_matching.training.synth import synthesize
from tests.support import Service
from tests.training.conftest import FAST_CONFIG

TOKEN = "trainer-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
FS = default_feature_set()


def outcomes(n: int, seed: int, prefix: str = "o") -> list[dict[str, Any]]:
    """``n`` synthetic outcomes with ids ``{prefix}{seed}-{i}``, in /outcomes' shape."""
    body = synthesize(max(n, 2), FS, seed=seed)
    rows = zip(body["features"], body["outcomes"], strict=True)
    return [{"id": f"{prefix}{seed}-{i}", "features": f, "outcome": o} for i, (f, o) in enumerate(rows)][:n]


def full_disk_at_commit(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Make every COMMIT of the SQLite database fail as on a full disk (the transaction rolled
    back, StorageFull raised), until the function returned is called."""
    real = database._SqliteTx.execute

    def full_at_commit(self: Any, sql: str, *params: Any) -> Any:
        if sql == "COMMIT":
            self._db.connection.execute("ROLLBACK")
            raise StorageFull("database or disk is full")
        return real(self, sql, *params)

    monkeypatch.setattr(database._SqliteTx, "execute", full_at_commit)
    return lambda: monkeypatch.setattr(database._SqliteTx, "execute", real)


@pytest.fixture
def fast_config_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.json"
    path.write_text(json.dumps(FAST_CONFIG))
    return path


@pytest.fixture
def trainer_store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def settings(trainer_store: Path, fast_config_file: Path) -> TrainerSettings:
    return TrainerSettings(
        models_dir=trainer_store, admin_token=TOKEN, train_config=fast_config_file, max_batch_rows=300
    )


@pytest.fixture
def client(settings: TrainerSettings) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(settings)) as c:
        yield c


def trainer_service(store: Path, config: Path, log_dir: Path | None = None, **env: str) -> Service:
    environ = {
        "MODELS_DIR": str(store),
        "ML_TRAINER_HOST": "127.0.0.1",
        "ML_SERVICE_ADMIN_TOKEN": TOKEN,
        "TRAIN_CONFIG": str(config),
        "LOG_LEVEL": "INFO",
        **env,
    }
    logs = log_dir or store.parent
    log = logs / f"trainer-{len(list(logs.glob('trainer-*.log')))}.log"
    return Service(["-m", "ml_matching.trainer"], environ, log, "ML_TRAINER_PORT")
