from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.runtime import create_app
from ml_matching.runtime.settings import Settings

TOKEN = "test-admin-token"


@pytest.fixture
def settings(store: Path) -> Settings:
    return Settings(models_dir=store, admin_token=TOKEN, max_batch_rows=50, max_body_bytes=64 * 1024)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
