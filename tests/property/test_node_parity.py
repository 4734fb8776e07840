"""The runtime's /predict/batch and the Node client's in-process model agree on generated rows.

Not only the golden rows: Hypothesis draws rows anywhere in the features' ranges (bounds, tiny and
float32-edge values included), and both runtimes score them from the same artifact. Runs where
clients/node has its dependencies (``nox -s node`` runs it after ``npm ci``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.runtime import create_app
from ml_matching.runtime.settings import Settings
from tests.conftest import FEATURE_NAMES, FIXTURE_STORE, GB_VERSION, ROOT

NODE_MODULES = ROOT / "clients" / "node" / "node_modules" / "onnxruntime-node"
pytestmark = pytest.mark.skipif(
    not NODE_MODULES.is_dir() or shutil.which("node") is None,
    reason="clients/node has no node_modules (npm ci), or node is missing: nox -s node runs this",
)
TOLERANCE = 1e-6
values = st.one_of(
    st.floats(0, 1, width=32),
    st.sampled_from([0.0, 1.0, 5e-324, 1e-45, 0.5, 0.4, 0.39999998, 0.40000001, 1 - 2**-24]),
)
rows = st.fixed_dictionaries(dict.fromkeys(FEATURE_NAMES, values))


@pytest.fixture(scope="module", params=["20260101_000000", GB_VERSION])
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Any]]:
    store = tmp_path_factory.mktemp("parity") / "store"
    shutil.copytree(FIXTURE_STORE, store)
    node = subprocess.Popen(
        ["node", str(Path(__file__).with_name("node_scorer.mjs")), str(store / request.param)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    with TestClient(create_app(Settings(models_dir=store, model_version=request.param))) as client:
        yield client, node
    node.stdin.close()  # type: ignore[union-attr]
    node.wait(10)
    node.stdout.close()  # type: ignore[union-attr]


def _node(node: Any, batch: list[dict[str, float]]) -> dict[str, Any]:
    node.stdin.write(json.dumps(batch) + "\n")
    node.stdin.flush()
    return dict(json.loads(node.stdout.readline()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(rows, min_size=1, max_size=30))
def test_python_and_node_score_generated_rows_alike(
    pair: tuple[TestClient[Litestar], Any], batch: list[dict[str, float]]
) -> None:
    client, node = pair
    remote = client.post("/predict/batch", json={"instances": batch}).json()
    local = _node(node, batch)
    assert local["modelVersion"] == remote["modelVersion"]
    for r, n in zip(remote["predictions"], local["predictions"], strict=True):
        for key in ("score", "confidence", "successProbability"):
            assert abs(r[key] - n[key]) <= TOLERANCE * 100, (key, r, n)
