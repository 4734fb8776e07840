"""Strict input: every client mistake is a 400 (413, 415) whose detail names what is wrong.

The details are the Node client's words too (clients/node/test/validate.test.js checks the same
sentences), so a message reads the same whichever runtime scored the row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.contract import load_version, number_text
from ml_matching.runtime import create_app
from ml_matching.runtime.settings import Settings
from tests.conftest import FEATURE_NAMES, FIXTURE_STORE, ROOT, SEED_ROW

Client = TestClient[Litestar]
JSON = {"content-type": "application/json"}


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["statusCode"] == status
    return body


def detail(response: Any, status: int = 400) -> str:
    return str(error_of(response, status)["detail"])


REFUSALS = json.loads((ROOT / "tests" / "fixtures" / "refusals.json").read_text())["cases"]


def _refused_row(case: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in SEED_ROW.items() if k not in case["drop"]}
    return {**row, **case["set"]}


@pytest.mark.parametrize("case", REFUSALS, ids=lambda c: c["name"])
def test_bad_rows_are_refused_in_the_shared_words(client: Client, case: dict[str, Any]) -> None:
    body = error_of(client.post("/predict", json=_refused_row(case)), 400)
    assert body["detail"] == case["detail"] and body["error"] == "invalid_input"
    batch = [SEED_ROW, _refused_row(case)]
    assert detail(client.post("/predict/batch", json={"instances": batch})) == f"row 1: {case['detail']}"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"brandFit": NaN}', "; NaN and Infinity are not JSON numbers (send a finite number)"),
        (b'{"brandFit": -Infinity}', "; NaN and Infinity are not JSON numbers (send a finite number)"),
        (b"{", "malformed JSON: "),
        (b"", "malformed JSON: "),
        (b"[1, 2]", "expected an object of features, got an array"),
        (b'{"a":', "malformed JSON: Input data was truncated"),  # not "unknown field `a`"
    ],
)
def test_malformed_bodies(client: Client, body: bytes, expected: str) -> None:
    assert expected in detail(client.post("/predict", content=body, headers=JSON))


def test_a_batch_cut_off_after_an_unknown_field_is_malformed_json(client: Client) -> None:
    answer = detail(client.post("/predict/batch", content=b'{"instances": [{"a":', headers=JSON))
    assert answer == "malformed JSON: Input data was truncated"


@pytest.mark.parametrize(
    ("key", "in_header", "in_units"),
    [
        ("", "header `ML-Unit-Key` is empty", "`units` key 0: expected a non-empty text key"),
        ("k" * 5000, "the unit key is 5000 bytes in UTF-8, more than 4096", "more than 4096"),
        ("Müller".encode(), "header `ML-Unit-Key` holds bytes outside ASCII", None),  # JSON has no bytes
    ],
)
def test_a_bad_unit_key_is_refused_with_no_experiment_running(
    client: Client, key: str | bytes, in_header: str, in_units: str | None
) -> None:
    """As under an experiment: a client learns of its bad keys before one starts, not when it does."""
    assert in_header in detail(client.post("/predict", json=SEED_ROW, headers={"ML-Unit-Key": key}))
    if in_units is not None:
        assert in_units in detail(
            client.post("/predict/batch", json={"instances": [SEED_ROW], "units": [key]})
        )


def test_overflowing_numbers_are_not_finite(client: Client, row: dict[str, float]) -> None:
    text = json.dumps(row).replace('"brandFit": 0.8', '"brandFit": 1e999')
    got = detail(client.post("/predict", content=text, headers=JSON))
    assert got == "feature `brandFit`: number 1e999 is not finite (out of float range)"
    long = "1e" + "9" * 30_000  # quoted whole, the answer and the log line were as long
    got = detail(client.post("/predict", content=text.replace("1e999", long), headers=JSON))
    assert (
        got
        == f"feature `brandFit`: number {long[:40]}… (30,002 characters) is not finite (out of float range)"
    )


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(client: Client, row: dict[str, float], content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    request = client.build_request("POST", "/predict", content=json.dumps(row), headers=headers)
    assert request.headers.get("content-type") == content_type
    body = error_of(client.send(request), 415)
    assert "Content-Type: application/json" in body["detail"] and body["error"] == "unsupported_media_type"


def test_batch_errors_name_the_row(client: Client, row: dict[str, Any]) -> None:
    rows = [dict(row), {**row, "brandFit": "high"}]
    got = detail(client.post("/predict/batch", json={"instances": rows}))
    assert got == 'row 1: feature `brandFit`: expected a number, got a string "high"'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"instances": []}, "`instances` is empty: send at least 1 row"),
        ({"instances": [SEED_ROW] * 51}, "`instances` has 51 rows, more than MAX_BATCH_ROWS (50)"),
        (
            {"instances": [SEED_ROW], "rows": 1},
            'unknown field `rows` (expected {"instances": [row, ...]}, and "units": [key, ...] under an experiment)',
        ),
        ({"instances": SEED_ROW}, "`instances` must be a list of rows, got an object"),
        ({"rows": [SEED_ROW]}, 'expected {"instances": [row, ...]}: missing field `instances`'),
    ],
)
def test_batch_shape_errors_say_what_is_expected(client: Client, body: Any, expected: str) -> None:
    assert detail(client.post("/predict/batch", json=body)) == expected


def test_a_bare_array_or_one_row_sent_to_batch_gets_a_hint(client: Client) -> None:
    bare = detail(client.post("/predict/batch", json=[SEED_ROW]))
    assert bare == 'expected {"instances": [row, ...]}, got an array: wrap the rows as {"instances": [...]}'
    one = detail(client.post("/predict/batch", json=SEED_ROW))
    assert "got one row of features: score it with POST /predict" in one


def test_body_over_the_limit_is_413_and_states_the_limit(client: Client) -> None:
    big = b'{"instances": [' + b" " * (64 * 1024) + b"]}"
    body = error_of(client.post("/predict/batch", content=big, headers=JSON), 413)
    assert body == {
        "statusCode": 413,
        "error": "request_entity_too_large",
        "detail": "request body is larger than MAX_BODY_BYTES (65536 bytes)",
    }


def test_the_default_body_limit_fits_a_full_batch_of_the_seed_rows(store: Path) -> None:
    settings = Settings(models_dir=store)
    rows = [SEED_ROW] * settings.max_batch_rows
    text = json.dumps({"instances": rows}, indent=2)  # pretty-printed: the larger way to write it
    assert len(text) > 4 * 1024 * 1024, "the old 4 MiB limit refused this batch"
    with TestClient(create_app(settings)) as c:
        response = c.post("/predict/batch", content=text, headers=JSON)
        assert response.status_code == 200, response.text[:300]
        assert len(response.json()["predictions"]) == settings.max_batch_rows
        over = detail(c.post("/predict/batch", content=b" " * (settings.body_limit + 1), headers=JSON), 413)
        assert over == f"request body is larger than MAX_BODY_BYTES ({settings.body_limit} bytes)"


def test_another_feature_set_is_checked_with_its_own_ranges(client: Client, admin: dict[str, str]) -> None:
    from tests.conftest import OTHER_VERSION

    assert client.post(f"/models/{OTHER_VERSION}/load", headers=admin).status_code == 200
    row = {
        "audienceOverlap": 0.4,
        "pastCollaborations": 60,
        "priceRatio": 1.0,
        "replyHours": -1,
        "sentiment": -9,
    }
    assert (
        detail(client.post("/predict", json=row))
        == "feature `pastCollaborations`: value 60 is outside [0, 50]"
    )
    row["pastCollaborations"] = 3
    assert (
        detail(client.post("/predict", json=row)) == "feature `replyHours`: value -1 is below the minimum 0"
    )
    row["replyHours"] = 1e6  # no maximum
    assert client.post("/predict", json=row).status_code == 200
    # No bound but float32's: past it the model would score infinity, in every form of request.
    too_big = (
        "feature `sentiment`: value -1e+39 is not a finite number in float32, which the model computes in"
    )
    row["sentiment"] = -1e39
    assert detail(client.post("/predict", json=row)) == too_big
    assert detail(client.post("/predict/batch", json={"instances": [row]})) == f"row 0: {too_big}"
    names = load_version(FIXTURE_STORE, OTHER_VERSION).feature_set.names  # the tensor's column order
    tensor = {"name": "input", "shape": [1, 5], "datatype": "FP32", "data": [row[n] for n in names]}
    answer = client.post("/v2/models/ml-matching/infer", json={"inputs": [tensor]})
    assert answer.status_code == 400
    v2 = answer.json()["error"]  # the protocol's error shape
    column = names.index("sentiment")
    assert v2.endswith(f"row 0, column {column} (feature `sentiment`): {too_big.partition(': ')[2]}"), v2
    old = detail(client.post("/predict", json=dict(SEED_ROW)))
    assert old.startswith("unknown features `nicheAlignment`, `audienceMatch`")
    assert FEATURE_NAMES[0] == "nicheAlignment"


@pytest.mark.parametrize(
    ("value", "javascript"),
    [
        (1.0, "1"),
        (-0.25, "-0.25"),
        (1e-7, "1e-7"),
        (2.5e-5, "0.000025"),
        (1e21, "1e+21"),
        (123456789012.0, "123456789012"),
    ],
)
def test_numbers_are_written_as_javascript_writes_them(value: float, javascript: str) -> None:
    # The Node client writes the same messages with String(value); these are its outputs.
    assert number_text(value) == javascript
