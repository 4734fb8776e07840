from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml_matching.contract import default_feature_set, feature_set_from_obj
from ml_matching.training.data import load_dataset
from ml_matching.training.errors import DataError

FS = default_feature_set()


def _write_formats(tmp_path: Path, body: dict[str, Any]) -> dict[str, Path]:
    as_json = tmp_path / "a.json"
    as_json.write_text(json.dumps(body))
    as_jsonl = tmp_path / "a.jsonl"
    as_jsonl.write_text(
        "".join(
            json.dumps({**r, "outcome": o}) + "\n"
            for r, o in zip(body["features"], body["outcomes"], strict=True)
        )
    )
    as_csv = tmp_path / "a.csv"
    with as_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*FS.names, "outcome"])
        for r, o in zip(body["features"], body["outcomes"], strict=True):
            w.writerow([repr(r[n]) for n in FS.names] + [str(o).lower()])
    return {"json": as_json, "jsonl": as_jsonl, "csv": as_csv}


def test_three_formats_load_the_same(tmp_path: Path, synth_body: dict[str, Any]) -> None:
    loaded = [load_dataset(p, FS) for p in _write_formats(tmp_path, synth_body).values()]
    for d in loaded[1:]:
        assert np.array_equal(d.x, loaded[0].x) and np.array_equal(d.y, loaded[0].y)
    assert loaded[0].rows == 400 and loaded[0].x.shape == (400, 19)
    assert loaded[0].y.tolist() == [int(o) for o in synth_body["outcomes"]]


def _bad(body: dict[str, Any], i: int, **change: Any) -> dict[str, Any]:
    rows = [dict(r) for r in body["features"]]
    for k, v in change.items():
        if v is _DROP:
            rows[i].pop(k)
        else:
            rows[i][k] = v
    return {"features": rows, "outcomes": list(body["outcomes"])}


_DROP = object()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"brandFit": _DROP}, "row 5: missing feature `brandFit` (expected 19 features, got 18)"),
        (
            {"brandFit": _DROP, "accountAge": _DROP},
            "row 5: missing features `brandFit`, `accountAge` (expected 19 features, got 17)",
        ),
        ({"followers": 0.5}, "row 5: unknown feature `followers` (the feature set has 19)"),
        ({"brandFit": "high"}, "row 5, feature `brandFit`: expected a number, got 'high'"),
        ({"brandFit": True}, "row 5, feature `brandFit`: expected a number, got true"),
        ({"brandFit": None}, "row 5, feature `brandFit`: expected a number, got null"),
        ({"brandFit": "NaN"}, "row 5, feature `brandFit`: value NaN is not a finite number"),
        ({"brandFit": "inf"}, "row 5, feature `brandFit`: value Infinity is not a finite number"),
        ({"brandFit": 1.5}, "row 5, feature `brandFit`: value 1.5 is outside [0, 1]"),
        ({"brandFit": "1_0"}, "row 5, feature `brandFit`: expected a number, got '1_0'"),  # Python's
        ({"brandFit": "\u0661"}, "row 5, feature `brandFit`: expected a number, got '\u0661'"),  # Arabic 1
    ],
)
def test_bad_values_are_named(
    tmp_path: Path, synth_body: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_bad(synth_body, 4, **change)))
    with pytest.raises(DataError) as info:
        load_dataset(path, FS)
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            lambda b: {**b, "outcomes": [*b["outcomes"][:-1], "maybe"]},
            'row 400: outcome must be true/false, 1/0 or "yes"/"no", got "maybe"',
        ),
        (lambda b: {**b, "outcomes": [True] * 400}, "only one class present (every outcome is true)"),
        (
            lambda b: {"features": b["features"][:49], "outcomes": b["outcomes"][:49]},
            "49 rows; training needs at least 50",
        ),
        (lambda b: {**b, "outcomes": b["outcomes"][:10]}, "400 feature rows but 10 outcomes"),
        (lambda b: [1, 2], 'expected an object with "features" and "outcomes" lists'),
    ],
)
def test_bad_outcomes_and_shapes(tmp_path: Path, synth_body: dict[str, Any], body: Any, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(body(synth_body)))
    with pytest.raises(DataError, match="^" + re.escape(f"{path}: {message}")):
        load_dataset(path, FS)


@pytest.mark.parametrize("name", ["data.txt", "data", "data.JSONL.bak"])
def test_an_unknown_suffix_names_the_formats_read(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("{}")
    with pytest.raises(
        DataError, match=r"the data format is chosen by the file's suffix, got .*; expected \.json"
    ):
        load_dataset(tmp_path / name, FS)


def test_yes_and_no_are_outcomes(tmp_path: Path, synth_body: dict[str, Any]) -> None:
    words = ["Yes" if o else "no" for o in synth_body["outcomes"]]
    path = tmp_path / "words.json"
    path.write_text(json.dumps({**synth_body, "outcomes": words}))
    assert load_dataset(path, FS).y.tolist() == [int(o) for o in synth_body["outcomes"]]


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(tmp_path / "missing.json", FS)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_dataset(tmp_path / "x.json", FS)
    (tmp_path / "x.csv").write_text(",".join(FS.names) + "\n")
    with pytest.raises(DataError, match="missing column `outcome`"):
        load_dataset(tmp_path / "x.csv", FS)


def test_csv_missing_feature_column(tmp_path: Path, synth_body: dict[str, Any]) -> None:
    path = _write_formats(tmp_path, synth_body)["csv"]
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line.split(",", 1)[1] for line in lines) + "\n")
    with pytest.raises(DataError, match="row 1: missing feature `nicheAlignment`"):
        load_dataset(path, FS)


def test_sha256_is_of_the_file_bytes(data_file: Path) -> None:
    assert load_dataset(data_file, FS).sha256 == hashlib.sha256(data_file.read_bytes()).hexdigest()


def test_a_column_named_twice_is_refused(tmp_path: Path, synth_body: dict[str, Any]) -> None:
    """Rows are read by column name: a second `brandFit` silently replaced the first."""
    path = _write_formats(tmp_path, synth_body)["csv"]
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0] + ",brandFit", *(line + ",0" for line in lines[1:])]) + "\n")
    with pytest.raises(DataError, match=r"the header names more than once: `brandFit`$"):
        load_dataset(path, FS)


def test_json_under_a_csv_name_is_named_as_such(tmp_path: Path, synth_body: dict[str, Any]) -> None:
    path = tmp_path / "d.csv"
    path.write_text(json.dumps(synth_body))
    with pytest.raises(DataError, match=r"d.csv: the file holds JSON, not CSV: name it .json"):
        load_dataset(path, FS)


def test_a_header_of_many_repeated_names_lists_ten_of_them(tmp_path: Path) -> None:
    """Counted once, not per column (quadratic: a header of 100,001 fields took 90 s), and twenty listed."""
    path = tmp_path / "d.csv"
    path.write_text(",".join(f"c{i % 20_000}" for i in range(60_000)) + "\n")
    with pytest.raises(DataError) as raised:
        load_dataset(path, FS)
    message = str(raised.value)
    assert "the header names more than once: `c0`, `c1`, `c10`," in message
    assert message.endswith(" and 19,980 more") and message.count("`") == 40, message[-200:]


@pytest.mark.parametrize("suffix", ["json", "jsonl"])
def test_integers_too_long_for_a_float_or_for_python_are_named(
    tmp_path: Path, synth_body: dict[str, Any], suffix: str
) -> None:
    """Both raised out of the loader (OverflowError, ValueError): a traceback and exit 1."""
    path = _write_formats(tmp_path, synth_body)[suffix]
    text = path.read_text()
    first = repr(synth_body["features"][0]["brandFit"])
    path.write_text(text.replace(first, "1" + "0" * 400, 1))
    with pytest.raises(DataError, match="row 1, feature `brandFit`: a 401-digit integer is beyond the range"):
        load_dataset(path, FS)
    path.write_text(text.replace(first, "9" * 5000, 1))
    with pytest.raises(DataError, match=r"not valid JSON: Exceeds the limit \(4300 digits\)"):
        load_dataset(path, FS)


@pytest.mark.parametrize("suffix", ["json", "jsonl"])
def test_json_nested_too_deep_is_named(tmp_path: Path, suffix: str) -> None:
    """json's decoder recursed out: through the trainer's POST /train, a 500."""
    path = tmp_path / f"deep.{suffix}"
    path.write_text('{"features": ' + "[" * 100_000)
    with pytest.raises(DataError, match="not valid JSON: nested too deep"):
        load_dataset(path, FS)


def test_a_value_beyond_float32_is_refused_where_no_range_would(tmp_path: Path) -> None:
    """The model scores float32: 1e39 became infinity and failed deep in training (a traceback)."""
    fs = feature_set_from_obj({"features": [{"name": "a"}, {"name": "b"}]})
    path = tmp_path / "big.csv"
    path.write_text("a,b,outcome\n" + "".join(f"{i % 7},{i % 3},{i % 2}\n" for i in range(60)) + "1e39,1,0\n")
    with pytest.raises(DataError) as info:
        load_dataset(path, fs)
    assert (
        str(info.value) == f"{path}: row 61, feature `a`: value 1e+39 is beyond float32's range (±3.403e+38)"
    )


def test_a_key_given_twice_in_a_json_row_is_refused(tmp_path: Path, synth_body: dict[str, Any]) -> None:
    """A CSV header naming a column twice is refused: in JSON the last copy silently won."""
    text = json.dumps(synth_body).replace(
        '{"nicheAlignment": ', '{"nicheAlignment": 0.1, "nicheAlignment": ', 1
    )
    for path, content in ((tmp_path / "twice.json", text), (tmp_path / "twice.jsonl", _as_jsonl(text))):
        path.write_text(content)
        with pytest.raises(DataError, match="the key `nicheAlignment` appears twice in one object"):
            load_dataset(path, FS)


def _as_jsonl(text: str) -> str:
    """The first row of a JSON body as a JSON Lines file (the repeated key kept, as written)."""
    row = text.split('"features": [', 1)[1].split("}", 1)[0] + "}"
    return row[:-1] + ', "outcome": 1}\n'


def test_csv_the_csv_module_cannot_read_is_named_and_old_mac_line_ends_read(
    tmp_path: Path, synth_body: dict[str, Any]
) -> None:
    plain = _write_formats(tmp_path, synth_body)["csv"]
    text = plain.read_text()
    mac = tmp_path / "mac.csv"
    mac.write_bytes(text.replace("\r\n", "\r").encode())  # as old Mac spreadsheets save
    assert np.array_equal(load_dataset(mac, FS).x, load_dataset(plain, FS).x)
    huge = tmp_path / "huge.csv"  # an unclosed quote swallows the rest: past the csv module's field limit
    huge.write_text(text.replace("\r\n", '\r\n"', 1) + "x" * 140_000)
    with pytest.raises(DataError, match=r"huge\.csv: line \d+: not valid CSV: field larger than field limit"):
        load_dataset(huge, FS)
