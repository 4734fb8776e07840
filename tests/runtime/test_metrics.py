"""``GET /metrics``: what it counts, that its labels stay bounded, and METRICS=off."""

from __future__ import annotations

import shutil
from pathlib import Path

from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.runtime import create_app
from ml_matching.runtime.settings import Settings
from tests.conftest import GB_VERSION, RF_VERSION
from tests.prometheus import Samples, parse, value
from tests.runtime.corrupt import CORRUPTIONS

Client = TestClient[Litestar]


def scrape(client: Client) -> Samples:
    """Every sample of ``/metrics``, parsed by prometheus-client's own parser."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8", "one charset"
    return parse(response.text)


def test_requests_are_counted_by_route_template_method_and_status(
    client: Client, row: dict[str, float]
) -> None:
    for _ in range(3):
        assert client.post("/predict", json=row).status_code == 200
    client.post("/predict", json={**row, "nicheAlignment": 7})
    client.get(f"/models/{RF_VERSION}")
    client.get("/no/such/page")
    m = scrape(client)
    requests = "ml_matching_http_requests_total"
    assert value(m, requests, route="/predict", method="POST", status="200") == 3
    assert value(m, requests, route="/predict", method="POST", status="400") == 1
    assert value(m, requests, route="/models/{version}", method="GET", status="200") == 1
    assert value(m, requests, route="unmatched", method="GET", status="404") == 1
    duration = "ml_matching_http_request_duration_seconds_count"
    assert value(m, duration, route="/predict") == 4


def test_rows_scored_batch_sizes_and_the_served_version(client: Client, row: dict[str, float]) -> None:
    client.post("/predict", json=row)
    client.post("/predict/batch", json={"instances": [row] * 7})
    m = scrape(client)
    assert value(m, "ml_matching_predictions_total", version=RF_VERSION) == 8
    assert value(m, "ml_matching_batch_rows_count") == 1
    assert value(m, "ml_matching_batch_rows_sum") == 7
    assert value(m, "ml_matching_model_info", version=RF_VERSION, algorithm="random_forest") == 1
    assert value(m, "ml_matching_model_loads_total", result="loaded", check="") == 1
    # The fixture versions were trained in 2026-01: months old, not minutes, and not negative.
    assert value(m, "ml_matching_model_age_seconds") > 86_400


def test_a_swap_moves_the_info_gauge_and_counts_one_swap(client: Client, admin: dict[str, str]) -> None:
    assert client.post(f"/models/{GB_VERSION}/load", headers=admin).status_code == 200
    m = scrape(client)
    info = {labels: v for (name, labels), v in m.items() if name == "ml_matching_model_info"}
    assert info == {frozenset({("version", GB_VERSION), ("algorithm", "gradient_boosting")}): 1.0}
    assert value(m, "ml_matching_model_swaps_total") == 1
    assert value(m, "ml_matching_model_loads_total", result="loaded", check="") == 2


def test_three_refused_loads_count_three_with_the_check(
    client: Client, store: Path, admin: dict[str, str], tmp_path: Path
) -> None:
    corrupt, check = CORRUPTIONS["hash-mismatch"]
    corrupt(store / GB_VERSION)
    for _ in range(3):
        assert client.post(f"/models/{GB_VERSION}/load", headers=admin).status_code == 422
    shutil.rmtree(store / RF_VERSION)  # missing: refused by another check than the hash
    client.post(f"/models/{RF_VERSION}/load", headers=admin)
    m = scrape(client)
    assert value(m, "ml_matching_model_loads_total", result="refused", check=check) == 3
    assert value(m, "ml_matching_model_loads_total", result="refused", check="version_not_found") == 1
    assert value(m, "ml_matching_model_swaps_total") == 0


def test_labels_stay_bounded_under_unknown_urls_and_bad_versions(
    client: Client, admin: dict[str, str], row: dict[str, float]
) -> None:
    def hostile(i: int) -> None:
        client.get(f"/no/such/page/{i}")
        client.get(f"/models/2099{i:04d}_000000")
        client.post(f"/models/2099{i:04d}_000000/load", headers=admin)
        client.get(f"/models/bad..{i}")
        client.get(f"/models/{RF_VERSION}/files/nothing-{i}.txt")
        client.request(f"VERB{i}", "/predict")

    client.post("/predict", json=row)
    hostile(0)  # one of each, so every series they can create exists before counting
    scrape(client)  # and the scrape's own
    before = scrape(client)
    for i in range(1, 1001):
        hostile(i)
    after = scrape(client)
    assert set(after) == set(before)
    assert (
        value(after, "ml_matching_http_requests_total", route="unmatched", method="GET", status="404") == 1001
    )
    assert (
        value(after, "ml_matching_http_requests_total", route="unmatched", method="other", status="405")
        == 1001
    )


def test_metrics_off_records_nothing_and_serves_no_metrics(store: Path, row: dict[str, float]) -> None:
    with TestClient(create_app(Settings(models_dir=store, metrics=False))) as c:
        assert c.post("/predict", json=row).status_code == 200
        response = c.get("/metrics")
        assert response.status_code == 404 and response.json()["error"] == "not_found"
