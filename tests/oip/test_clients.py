"""Open Inference Protocol v2 with clients no one here wrote: tritonclient[http] and KServe's SDK.

They run against the real runtime (``ml-matching serve`` on 127.0.0.1), with only the base package
installed (``nox -s oip``), and must get the numbers ``/predict/batch`` gives for the same rows.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator

import numpy as np
import pytest

from tests.conftest import FEATURE_NAMES, FIXTURE_STORE, GB_VERSION, RF_VERSION, SEED_ROW
from tests.support import request, runtime_service

httpclient = pytest.importorskip("tritonclient.http", reason="the OIP client tests run in nox -s oip")
kserve = pytest.importorskip("kserve", reason="the OIP client tests run in nox -s oip")
from tritonclient.utils import InferenceServerException  # noqa: E402

MODEL = "ml-matching"


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    store = tmp_path_factory.mktemp("oip") / "store"
    shutil.copytree(FIXTURE_STORE, store)
    service = runtime_service(store).start()
    try:
        yield service.port
    finally:
        service.stop()


def rows(n: int = 40, seed: int = 0) -> np.ndarray:
    """``n`` valid rows in feature order, the seed's first."""
    x = np.random.default_rng(seed).uniform(0, 1, size=(n, len(FEATURE_NAMES)))
    x[0] = [SEED_ROW[f] for f in FEATURE_NAMES]
    return x.astype(np.float32)


def predict_scores(port: int, x: np.ndarray) -> np.ndarray:
    instances = [dict(zip(FEATURE_NAMES, r.tolist(), strict=True)) for r in x]
    status, body = request(port, "POST", "/predict/batch", {"instances": instances})
    assert status == 200, body
    return np.array([p["successProbability"] for p in body["predictions"]])


# --- tritonclient[http] ----------------------------------------------------------------------------


@pytest.fixture
def triton(port: int) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}")
    yield client
    client.close()


def test_triton_health_and_metadata(triton: httpclient.InferenceServerClient) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready(MODEL)
    assert triton.is_model_ready(MODEL, RF_VERSION)
    assert not triton.is_model_ready(MODEL, GB_VERSION), "stored but not served"
    assert triton.get_server_metadata()["name"] == MODEL
    meta = triton.get_model_metadata(MODEL)
    assert meta["name"] == MODEL and RF_VERSION in meta["versions"] and GB_VERSION in meta["versions"]
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, len(FEATURE_NAMES)]}]
    assert [o["name"] for o in meta["outputs"]] == ["probabilities", "label"]
    assert meta["parameters"]["features"] == FEATURE_NAMES and meta["parameters"]["version"] == RF_VERSION
    assert triton.get_model_metadata(MODEL, GB_VERSION)["parameters"]["algorithm"] == "gradient_boosting"


def _triton_infer(
    client: httpclient.InferenceServerClient, x: np.ndarray, version: str = "", outputs: bool = True
) -> httpclient.InferResult:
    tensor = httpclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=False)
    wanted = [httpclient.InferRequestedOutput(n, binary_data=False) for n in ("probabilities", "label")]
    return client.infer(MODEL, [tensor], model_version=version, outputs=wanted if outputs else None)


def test_triton_infer_equals_predict(triton: httpclient.InferenceServerClient, port: int) -> None:
    x = rows()
    result = _triton_infer(triton, x)
    proba, label = result.as_numpy("probabilities"), result.as_numpy("label")
    assert proba.dtype == np.float32 and proba.shape == (len(x), 2)
    assert label.dtype == np.int64 and label.tolist() == (proba[:, 1] >= 0.5).astype(int).tolist()
    np.testing.assert_array_equal(100.0 * proba[:, 1].astype(np.float64), predict_scores(port, x))
    assert result.get_response()["model_version"] == RF_VERSION
    # Asked for binary outputs (no outputs named): answered in JSON, which the client reads too.
    again = _triton_infer(triton, x, version=RF_VERSION, outputs=False)
    np.testing.assert_array_equal(again.as_numpy("probabilities"), proba)


def test_triton_sees_clear_errors(triton: httpclient.InferenceServerClient) -> None:
    x = rows(3)
    with pytest.raises(
        InferenceServerException, match=f"version {GB_VERSION} is in the store but not loaded"
    ):
        _triton_infer(triton, x, version=GB_VERSION)
    bad = x.copy()
    bad[1, 2] = 1.5
    with pytest.raises(InferenceServerException, match="row 1, column 2 \\(feature `engagementRate`\\)"):
        _triton_infer(triton, bad)
    tensor = httpclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    with pytest.raises(InferenceServerException, match="binary tensor data is not supported"):
        triton.infer(MODEL, [tensor])
    with pytest.raises(InferenceServerException, match="no model `resnet` here"):
        triton.get_model_metadata("resnet")


# --- KServe's v2 REST client -----------------------------------------------------------------------


def test_kserve_health_and_infer_equal_predict(port: int) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    base = f"http://127.0.0.1:{port}"
    x = rows(25, seed=3)

    async def run() -> tuple[bool, bool, bool, np.ndarray, str | None]:
        async with InferenceRESTClient(RESTConfig(protocol="v2", retries=0)) as client:
            live = await client.is_server_live(base)
            ready = await client.is_server_ready(base)
            model_ready = await client.is_model_ready(base, MODEL)
            tensor = InferInput("input", list(x.shape), "FP32", data=x)
            answer = await client.infer(base, InferRequest(MODEL, [tensor], request_id="req-7"), MODEL)
            return live, ready, model_ready, answer.outputs[0].as_numpy(), answer.id

    live, ready, model_ready, proba, request_id = asyncio.run(run())
    assert live and ready and model_ready and request_id == "req-7"
    np.testing.assert_array_equal(100.0 * proba[:, 1].astype(np.float64), predict_scores(port, x))


def test_kserve_sees_the_error_message(port: int) -> None:
    import httpx
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    x = rows(2)
    x[0, 0] = np.float32(-0.5)

    async def run() -> None:
        async with InferenceRESTClient(RESTConfig(protocol="v2", retries=0)) as client:
            tensor = InferInput("input", list(x.shape), "FP32", data=x)
            await client.infer(f"http://127.0.0.1:{port}", InferRequest(MODEL, [tensor]), MODEL)

    with pytest.raises(httpx.HTTPStatusError) as caught:
        asyncio.run(run())
    assert caught.value.response.status_code == 400
    assert "row 0, column 0 (feature `nicheAlignment`): value -0.5 is outside [0, 1]" in str(caught.value)
