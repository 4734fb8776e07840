"""``ml-matching score``: files in, the API's numbers out, refused rows named, nothing half-written."""

from __future__ import annotations

import csv
import io
import json
import math
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.cli import COMMANDS, main
from ml_matching.runtime import batch, create_app
from ml_matching.runtime.batch import SOME_REJECTED, Progress
from ml_matching.runtime.commands import SCORE
from ml_matching.runtime.settings import Settings
from tests.conftest import FEATURE_NAMES, RF_VERSION, ROOT, SEED_ROW
from tests.support import until

Client = TestClient[Litestar]
Cli = Callable[..., tuple[int, str]]
REFUSALS = json.loads((ROOT / "tests" / "fixtures" / "refusals.json").read_text())["cases"]


@pytest.fixture
def api(store: Path) -> Iterator[Client]:
    """The runtime on the same store (ACTIVE: the RandomForest), with room for big batches."""
    with TestClient(create_app(Settings(models_dir=store, max_batch_rows=1000))) as client:
        yield client


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``ml-matching score ...`` in-process: (exit code, stderr)."""

    def run(*args: str | Path) -> tuple[int, str]:
        code = main(["score", *map(str, args)])
        return code, capsys.readouterr().err

    return run


def rows(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Valid rows with a pass-through id; some values outside what training saw (lower confidence)."""
    x = np.random.default_rng(seed).uniform(size=(n, len(FEATURE_NAMES)))
    x[::7, 3] = 0.0
    return [{"pairId": f"p{i}", **dict(zip(FEATURE_NAMES, r, strict=True))} for i, r in enumerate(x.tolist())]


def write_csv(path: Path, records: list[dict[str, Any]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(records[0]))
        writer.writerows([repr(v) if isinstance(v, float) else v for v in r.values()] for r in records)
    return path


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def answers(api: Client, records: list[dict[str, Any]], explain: bool = False) -> list[dict[str, Any]]:
    """What POST /predict/batch answers for the rows' features."""
    instances = [{n: r[n] for n in FEATURE_NAMES} for r in records]
    out = []
    for i in range(0, len(instances), 1000):
        path = "/predict/batch?explain=true" if explain else "/predict/batch"
        response = api.post(path, json={"instances": instances[i : i + 1000]})
        assert response.status_code == 200, response.text
        out += response.json()["predictions"]
    return out


def refusal(api: Client, body: bytes) -> str:
    """The detail of the API's 400 for one /predict body."""
    response = api.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    return str(response.json()["detail"])


# --- the numbers are the API's ---------------------------------------------------------------------


def test_csv_gives_the_apis_scores_and_keeps_every_column(
    tmp_path: Path, store: Path, api: Client, cli: Cli
) -> None:
    records = rows(300)
    src, out = write_csv(tmp_path / "pairs.csv", records), tmp_path / "scored.csv"
    code, err = cli("--model", store / RF_VERSION, "--in", src, "--out", out, "--chunk-rows", "64")
    assert code == 0, err
    got = read_csv(out)
    assert list(got[0]) == [*records[0], "score", "confidence"]
    assert [r["pairId"] for r in got] == [r["pairId"] for r in records]
    assert [{n: float(r[n]) for n in FEATURE_NAMES} for r in got] == [
        {n: r[n] for n in FEATURE_NAMES} for r in records
    ]
    expected = answers(api, records)
    assert [(float(r["score"]), float(r["confidence"])) for r in got] == [
        (a["score"], a["confidence"]) for a in expected
    ]
    assert any(a["confidence"] < 100 * abs(2 * a["score"] / 100 - 1) for a in expected)  # extrapolations seen
    assert (out.parent / "scored.csv.rejects.jsonl").read_text() == ""
    assert "scored 300 rows, rejected 0" in err


def test_jsonl_explained_gives_the_apis_contributions(
    tmp_path: Path, store: Path, api: Client, cli: Cli
) -> None:
    records = rows(200, seed=3)
    src, out = write_jsonl(tmp_path / "pairs.ndjson", records), tmp_path / "scored.jsonl"
    code, err = cli(
        "--model", store, "--in", src, "--out", out, "--explain", "--chunk-rows", "50"
    )  # the store: ACTIVE
    assert code == 0, err
    got = read_jsonl(out)
    expected = answers(api, records, explain=True)
    assert [{k: r[k] for k in records[0]} for r in got] == records
    assert [(r["score"], r["confidence"]) for r in got] == [(a["score"], a["confidence"]) for a in expected]
    contributions = [[r[f"contributions.{n}"] for n in FEATURE_NAMES] for r in got]
    assert contributions == [[a["contributions"][n] for n in FEATURE_NAMES] for a in expected]
    # baseValue + Σ contributions is the model's output in the explanation's scale (log-odds here).
    base = json.loads((store / RF_VERSION / "model.json").read_text())["explanation"]["baseValue"]
    p = np.array([r["score"] for r in got]) / 100
    assert np.abs(1 / (1 + np.exp(-(base + np.sum(contributions, axis=1)))) - p).max() <= 1e-5


@pytest.mark.extras
def test_parquet_round_trip(tmp_path: Path, store: Path, api: Client, cli: Cli) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    records = rows(120, seed=5)
    table = pa.Table.from_pylist(records)
    table = table.append_column("batch", pa.array(list(range(120)), type=pa.int32()))
    src, out = tmp_path / "pairs.parquet", tmp_path / "scored.parquet"
    pq.write_table(table, src, row_group_size=50)
    code, err = cli("--model", store / RF_VERSION, "--in", src, "--out", out, "--chunk-rows", "32")
    assert code == 0, err
    got = pq.read_table(out)
    assert got.schema.names == [*table.schema.names, "score", "confidence"]
    assert got.select(table.schema.names).equals(table)
    expected = answers(api, records)
    assert got.column("score").to_pylist() == [a["score"] for a in expected]
    assert got.column("confidence").to_pylist() == [a["confidence"] for a in expected]


# --- refused rows ----------------------------------------------------------------------------------


def test_refused_jsonl_rows_read_as_the_apis_400(tmp_path: Path, store: Path, api: Client, cli: Cli) -> None:
    good = rows(3)
    cases = [c for c in REFUSALS if c["reason"] != "unknown"]
    bad = [{**{k: v for k, v in SEED_ROW.items() if k not in c["drop"]}, **c["set"]} for c in cases]
    odd = [
        "not json",
        '{"brandFit": NaN}',
        json.dumps(SEED_ROW).replace('"brandFit": 0.8', '"brandFit": 1e999'),
        json.dumps(SEED_ROW).replace('"brandFit": 0.8', '"brandFit": 1' + "0" * 400),
        "[1, 2]",
    ]
    lines: list[Any] = [good[0], *bad, "", good[1], *odd, good[2]]
    src, out = write_jsonl(tmp_path / "in.jsonl", lines), tmp_path / "out.jsonl"
    code, err = cli("--model", store / RF_VERSION, "--in", src, "--out", out, "--chunk-rows", "4")
    assert code == SOME_REJECTED == 3, err
    assert [r["pairId"] for r in read_jsonl(out)] == ["p0", "p1", "p2"]
    rejects = read_jsonl(tmp_path / "out.jsonl.rejects.jsonl")
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line not in ("",) and line not in good]
    assert [r["line"] for r in rejects] == [n for n, _ in numbered]
    for r, (_, line) in zip(rejects, numbered, strict=True):
        body = (line if isinstance(line, str) else json.dumps(line)).encode()
        assert r["reason"] == refusal(api, body), line
        assert r["input"] == body.decode()
    assert [r["reason"] for r in rejects[: len(cases)]] == [c["detail"] for c in cases]
    assert "rejected 15" in err


def test_fields_other_than_features_pass_through_and_output_names_are_refused(
    tmp_path: Path, store: Path, cli: Cli
) -> None:
    lines = [{**SEED_ROW, "followers": 3}, {**SEED_ROW, "score": 1}, {**SEED_ROW, "confidence": None}]
    src, out = write_jsonl(tmp_path / "in.jsonl", lines), tmp_path / "out.jsonl"
    assert cli("--model", store, "--in", src, "--out", out)[0] == SOME_REJECTED
    assert read_jsonl(out)[0]["followers"] == 3
    reasons = [r["reason"] for r in read_jsonl(tmp_path / "out.jsonl.rejects.jsonl")]
    assert reasons == [
        "the row has `score`, which scoring writes: rename or drop it",
        "the row has `confidence`, which scoring writes: rename or drop it",
    ]
    header = write_csv(tmp_path / "in.csv", [{**SEED_ROW, "score": 1.0}])
    code, err = cli("--model", store, "--in", header, "--out", tmp_path / "out.csv")
    assert code == 2 and "it has the column `score`, which scoring writes" in err


def test_refused_csv_rows_name_their_line(tmp_path: Path, store: Path, api: Client, cli: Cli) -> None:
    head = ["note", *FEATURE_NAMES]
    seed = [repr(SEED_ROW[n]) for n in FEATURE_NAMES]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(head)  # line 1
    writer.writerow(["plain", *seed])  # 2
    writer.writerow(["two\nlines, quoted", *seed])  # 3-4
    writer.writerow(["abc", "abc", *seed[1:]])  # 5: refused
    text.write("   \n")  # 6: blank, spaces or not (a reject when a quote was near, a gap when not)
    writer.writerow(["short", "0.5"])  # 7: refused
    writer.writerow(["empty", *seed[:3], "", *seed[4:]])  # 8: refused
    writer.writerow(["range", *seed[:3], "1.5", *seed[4:]])  # 9: refused
    writer.writerow(["last", *seed])  # 10
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(text.getvalue())
    for chunk in ("1", "3", "100"):
        code, _ = cli("--model", store, "--in", src, "--out", out, "--chunk-rows", chunk)
        assert code == SOME_REJECTED
        assert [r["note"] for r in read_csv(out)] == ["plain", "two\nlines, quoted", "last"]
        rejects = read_jsonl(tmp_path / "out.csv.rejects.jsonl")
        assert [(r["line"], r["reason"]) for r in rejects] == [
            (5, 'feature `nicheAlignment`: expected a number, got a string "abc"'),
            (7, "expected 20 cells (as the header has), got 2"),
            (8, "feature `brandFit`: expected a number, got null"),
            (9, "feature `brandFit`: value 1.5 is outside [0, 1]"),
        ]
        assert rejects[0]["input"] == dict(zip(head, ["abc", "abc", *seed[1:]], strict=True))
        assert rejects[1]["input"] == ["short", "0.5"]
    # The API's words for the same values sent as numbers (and null for the empty cell).
    assert rejects[3]["reason"] == refusal(api, json.dumps({**SEED_ROW, "brandFit": 1.5}).encode())
    assert rejects[2]["reason"] == refusal(api, json.dumps({**SEED_ROW, "brandFit": None}).encode())


# --- exit codes and failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--in", "{tmp}/in.txt", "--out", "{tmp}/out.txt"],
            "the format is chosen by the suffix, got `.txt`",
        ),
        (["--in", "{tmp}/in.csv", "--out", "{tmp}/out.jsonl"], "write the same format as --in (csv)"),
        (["--in", "{tmp}/none.csv", "--out", "{tmp}/out.csv"], "none.csv: no such file"),
        (
            ["--in", "{tmp}/in.csv", "--out", "{tmp}/out.csv", "--chunk-rows", "0"],
            "--chunk-rows must be at least 1",
        ),
        (["--in", "{tmp}/in.csv", "--out", "{tmp}/in.csv"], "must be three different files"),
        (["--in", "{tmp}/nobrand.csv", "--out", "{tmp}/out.csv"], "no column for feature `brandFit`"),
        (["--in", "{tmp}/in.csv", "--out", "{tmp}/folder.csv"], "folder.csv is a folder (a --dask run"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, store: Path, cli: Cli, args: list[str], expected: str
) -> None:
    write_csv(tmp_path / "in.csv", rows(3))
    (tmp_path / "in.txt").write_text("x")
    write_csv(tmp_path / "nobrand.csv", [{k: v for k, v in r.items() if k != "brandFit"} for r in rows(3)])
    (tmp_path / "folder.csv").mkdir()
    before = sorted(tmp_path.iterdir())
    code, err = cli("--model", store, *[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and expected in err, err
    assert sorted(tmp_path.iterdir()) == before


def test_a_model_that_is_no_version_exits_2_and_a_corrupt_one_1(
    tmp_path: Path, store: Path, cli: Cli
) -> None:
    src = write_csv(tmp_path / "in.csv", rows(3))
    code, err = cli("--model", tmp_path, "--in", src, "--out", tmp_path / "out.csv")
    assert code == 2 and "not a version folder (no model.json) nor a store with an ACTIVE file" in err
    onnx = store / RF_VERSION / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\0")
    code, err = cli("--model", store, "--in", src, "--out", tmp_path / "out.csv")
    assert code == 1 and "sha256" in err
    assert not (tmp_path / "out.csv").exists()


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, store: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    code, err = cli("--model", store, "--in", tmp_path / "in.parquet", "--out", tmp_path / "out.parquet")
    assert code == 2 and "pip install 'ml-matching[parquet]'" in err


def test_a_failure_midway_leaves_nothing_under_the_output_names(
    tmp_path: Path, store: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_csv(tmp_path / "in.csv", rows(100))
    out, rejects = tmp_path / "out.csv", tmp_path / "out.csv.rejects.jsonl"
    out.write_text("yesterday's output\n")
    calls = []
    real = batch.score_rows

    def failing(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(*args)

    monkeypatch.setattr(batch, "score_rows", failing)
    code, err = cli("--model", store, "--in", src, "--out", out, "--chunk-rows", "10")
    assert code == 1 and "error: score failed: No space left on device" in err
    assert out.read_text() == "yesterday's output\n" and not rejects.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv", "store"]
    # A file that turns bad after the first chunks (not UTF-8 on a late line): exit 2, nothing written.
    monkeypatch.setattr(batch, "score_rows", real)
    src.write_bytes(src.read_bytes() + b'"x\xff",' + b"0.5," * 18 + b"0.5\n")
    code, err = cli("--model", store, "--in", src, "--out", out, "--chunk-rows", "10")
    assert code == 2 and "line 102: not UTF-8" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv", "store"]


def test_a_terminated_run_leaves_nothing_behind(tmp_path: Path, store: Path) -> None:
    src = write_csv(tmp_path / "in.csv", rows(20_000))
    out = tmp_path / "out.csv"
    cmd = [
        sys.executable,
        "-m",
        "ml_matching",
        "score",
        "--model",
        str(store),
        "--in",
        str(src),
        "--out",
        str(out),
    ]
    proc = subprocess.Popen([*cmd, "--chunk-rows", "1"], stderr=subprocess.DEVNULL)  # slow on purpose
    try:
        until(
            lambda: (
                any(p.name.startswith(".out.csv.tmp-") for p in tmp_path.iterdir()) or proc.poll() is not None
            )
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "store"]


# The kill reaches a thread other than the main one (the process has onnxruntime's and numpy's) just
# after the output's temporary file is made: Python runs the handler in the main thread, whatever
# that thread's signal mask, so masking SIGTERM there left the file behind (seen once in CI).
KILLED_FROM_ANOTHER_THREAD = """
import signal, sys, threading, time
from ml_matching.cli import main
from ml_matching.runtime import files

made, made_temporary = threading.Event(), files.temporary

def temporary(path, folder=False):
    tmp = made_temporary(path, folder)
    made.set()
    time.sleep(0.3)  # the kill arrives here, before the code that removes the file is registered
    return tmp

def kill():
    made.wait()
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # to this thread, which masks nothing

files.temporary = temporary
threading.Thread(target=kill, daemon=True).start()
sys.exit(main(sys.argv[1:]))
"""


def test_a_kill_that_reaches_another_thread_as_the_output_is_made_leaves_nothing_behind(
    tmp_path: Path, store: Path
) -> None:
    src = write_csv(tmp_path / "in.csv", rows(100))
    cmd = ["score", "--model", str(store), "--in", str(src), "--out", str(tmp_path / "out.csv")]
    done = subprocess.run(
        [sys.executable, "-c", KILLED_FROM_ANOTHER_THREAD, *cmd], capture_output=True, timeout=60
    )
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "store"]


# --- chunks, progress, the command ------------------------------------------------------------------

_cells = st.one_of(
    st.floats(0, 1).map(repr),
    st.sampled_from(["", "abc", "1.5", "-0", "nan", "1e999", " 0.25 "]),
)
_notes = st.text(alphabet='ab,"\n ', max_size=6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    table=st.lists(st.tuples(_notes, st.lists(_cells, min_size=19, max_size=19)), min_size=1, max_size=40),
    chunk=st.integers(1, 12),
)
def test_any_chunk_size_gives_the_output_of_one_chunk(
    tmp_path_factory: pytest.TempPathFactory, store: Path, table: list[tuple[str, list[str]]], chunk: int
) -> None:
    folder = tmp_path_factory.mktemp("chunks")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["note", *FEATURE_NAMES])
    writer.writerows([note, *cells] for note, cells in table)
    src = folder / "in.csv"
    src.write_text(text.getvalue())
    records = [
        {"note": note, **dict(zip(FEATURE_NAMES, map(_json_cell, cells), strict=True))}
        for note, cells in table
    ]
    jsonl = write_jsonl(folder / "in.jsonl", records)
    for source in (src, jsonl):
        outputs = []
        for size in (chunk, 10_000):
            out = folder / f"out-{size}{source.suffix}"
            main(
                [
                    "score",
                    "--model",
                    str(store),
                    "--in",
                    str(source),
                    "--out",
                    str(out),
                    "--chunk-rows",
                    str(size),
                ]
            )
            outputs.append((out.read_bytes(), Path(f"{out}.rejects.jsonl").read_bytes()))
        assert outputs[0] == outputs[1]
        scored, rejected = outputs[0][0].count(b"\n") - (source.suffix == ".csv"), outputs[0][1].count(b"\n")
        assert scored + rejected >= len(table)  # a rejected row is never dropped silently


def _json_cell(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text or None
    return value if math.isfinite(value) else text


def test_progress_is_at_most_a_line_a_second_with_rate_and_time_left() -> None:
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(stream, clock=lambda: now[0])
    for i in range(1, 10):
        now[0] = i * 0.1
        progress.update(i * 1000, 0, i / 100)
    assert stream.getvalue() == ""
    now[0] = 2.0
    progress.update(20_000, 3, 0.25)
    assert stream.getvalue() == "score: 20,000 rows (3 rejected), 10,000 rows/s, 25% read, ETA 0:00:06\n"
    progress.update(21_000, 3, 0.26)
    assert stream.getvalue().count("\n") == 1


def test_the_command_is_listed_with_its_rooms_help_and_documents_its_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert COMMANDS["score"] == ("runtime", SCORE.help)
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "3 the output is written, but some rows were refused" in text
    assert "--dask ADDRESS" in text and "--explain" in text
