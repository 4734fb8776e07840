"""Fixtures shared by every suite: a private copy of the fixture store and a valid feature row.

Every test that needs the ``train`` extra carries the ``train`` marker: those in the folders and
modules of :data:`NEED_TRAINING` get it here, others are marked where they are written. Where the
extra is not installed, those folders and modules (which import scikit-learn) are not even collected.

The runtime's own tests (tests/runtime) belong to the base install, which is what the runtime ships
as. ``nox`` runs them there only: its runtime-only session runs ``pytest -m "not train" tests/runtime``
in that install, and its tests session (every other test) sets ``ML_MATCHING_RUNTIME_TESTS=runtime_only``
and leaves out those of them that the runtime-only session runs (all but the ``train`` ones and
the ``extras`` ones, which need an optional extra such as dask or parquet). So that none runs
nowhere, a runtime test that skips in the runtime-only session fails it instead, naming the marker.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_STORE = ROOT / "tests" / "fixtures" / "store"
RF_VERSION = "20260101_000000"
GB_VERSION = "20260102_000000"
# A RandomForest on another feature set (5 features, other ranges): see scripts/build_fixture.py.
OTHER_VERSION = "20260103_000000"
# Made by copy_version: a copy of the GradientBoosting version, a third version on the same features.
COPY = "20260104_000000"


def copy_version(store: Path, source: str, name: str) -> None:
    """A copy of ``source`` in ``store`` under the version name ``name`` (its sidecar says so)."""
    shutil.copytree(store / source, store / name)
    sidecar = json.loads((store / name / "model.json").read_text())
    (store / name / "model.json").write_text(json.dumps({**sidecar, "version": name}))


FEATURE_NAMES = [
    f["name"] for f in json.loads((ROOT / "schemas" / "features.default.json").read_text())["features"]
]
# The seed's example payload (its write-up's curl example).
SEED_ROW: dict[str, float] = json.loads((ROOT / "schemas" / "examples" / "predict.request.json").read_text())


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A writable copy of the committed fixture store (ACTIVE = the RandomForest version)."""
    target = tmp_path / "store"
    shutil.copytree(FIXTURE_STORE, target)
    return target


@pytest.fixture
def models(store: Path) -> Path:
    """The fixture store plus COPY: three versions of one feature set (control, candidate, shadow)."""
    copy_version(store, GB_VERSION, COPY)
    return store


@pytest.fixture
def row() -> dict[str, Any]:
    return dict(SEED_ROW)


#: Folders and modules (relative to tests/) whose every test needs the train extra.
NEED_TRAINING = (
    "training",
    "trainer",
    "reliability/test_faults.py",
    "reliability/test_experiment_flow.py",
    "reliability/test_holdout_flow.py",
    "reliability/test_rollout_flow.py",
    "reliability/test_two_trainers.py",
)
#: Modules (relative to tests/) whose every test needs an optional extra other than train.
NEED_EXTRAS = ("runtime/test_score_dask.py",)
HAVE_TRAIN_EXTRA = importlib.util.find_spec("sklearn") is not None
RUNTIME_ONLY = bool(os.environ.get("ML_MATCHING_RUNTIME_ONLY"))  # set by `nox -s runtime_only`
collect_ignore = [] if HAVE_TRAIN_EXTRA else list(NEED_TRAINING)
collect_ignore += list(NEED_EXTRAS) if RUNTIME_ONLY else []
HERE = Path(__file__).parent


def _within(item: pytest.Item, places: tuple[str, ...]) -> bool:
    where = item.path.relative_to(HERE).as_posix()
    return any(where == n or where.startswith(f"{n}/") for n in places)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests marked ``first`` start before the rest: the longest go first, so that with several
    # workers the others share the short tests meanwhile instead of waiting on them at the end.
    items.sort(key=lambda item: item.get_closest_marker("first") is None)
    for item in items:
        if _within(item, NEED_TRAINING):
            item.add_marker(pytest.mark.train)
        if _within(item, NEED_EXTRAS):
            item.add_marker(pytest.mark.extras)
    if os.environ.get("ML_MATCHING_RUNTIME_TESTS") == "runtime_only":
        kept, elsewhere = [], []
        for item in items:
            (elsewhere if _runs_in_runtime_only(item) else kept).append(item)
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = kept


def _runs_in_runtime_only(item: pytest.Item) -> bool:
    extra = item.get_closest_marker("train") or item.get_closest_marker("extras")
    return _within(item, ("runtime",)) and extra is None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if RUNTIME_ONLY and report.skipped and _runs_in_runtime_only(item):
        why = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} skipped ({why}) in the runtime-only session, the one session that runs"
            " it: mark it `extras` if it needs an optional extra, so that the tests session runs it"
        )


@pytest.fixture(scope="session")
def postgres() -> Any:
    """A PostgreSQL server of this test process (skipped where the binaries are absent)."""
    from tests.postgres import PostgresServer, binaries

    found = binaries()
    if found is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it)")
    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    server = PostgresServer(found).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The trainer's database, once as a SQLite file and once as a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "outcomes.sqlite")
    server = request.getfixturevalue("postgres")
    return str(server.database())
