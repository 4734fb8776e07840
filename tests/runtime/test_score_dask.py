"""``ml-matching score --dask``: a real LocalCluster (2 worker processes) gives the local output."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml_matching.cli import main
from ml_matching.contract import decode_sidecar
from ml_matching.runtime.batch import SOME_REJECTED, Job
from tests.conftest import FEATURE_NAMES, GB_VERSION, OTHER_VERSION, RF_VERSION, SEED_ROW

distributed = pytest.importorskip("distributed")
pytest.importorskip("dask.dataframe")
pytest.importorskip("pandas")

from ml_matching.runtime import dask_parts  # noqa: E402  # needs the dask extra, skipped above
from ml_matching.runtime.batch_dask import check_dask_job  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
    ) as cluster:
        yield cluster


def _score(*args: str | Path) -> int:
    return main(["score", *map(str, args)])


def _csv_input(path: Path) -> Path:
    x = np.random.default_rng(11).uniform(size=(250, len(FEATURE_NAMES)))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["pairId", *FEATURE_NAMES])
    for i, row in enumerate(x.tolist()):
        writer.writerow([f"p{i}", *map(repr, row)])
        if i % 60 == 7:  # a refused row now and then, in different partitions
            writer.writerow([f"bad{i}", "1.5", *map(repr, row[1:])])
    path.write_text(text.getvalue())
    return path


def _parts(folder: Path, header: bool) -> bytes:
    """The part files in order, concatenated (a CSV part's header once)."""
    parts = sorted(folder.iterdir())
    assert len(parts) > 1, "the file was scored in several partitions"
    chunks = [p.read_bytes() for p in parts]
    if header:
        chunks = [chunks[0]] + [c.split(b"\n", 1)[1] for c in chunks[1:]]
    return b"".join(chunks)


def test_csv_on_dask_is_the_local_output(tmp_path: Path, store: Path, cluster: Any) -> None:
    src = _csv_input(tmp_path / "pairs.csv")
    local, remote = tmp_path / "local.csv", tmp_path / "remote"
    model = store / RF_VERSION
    assert _score("--model", model, "--in", src, "--out", local) == SOME_REJECTED
    args = ("--model", model, "--in", src, "--out", remote, "--chunk-rows", "40")
    assert _score(*args, "--dask", cluster.scheduler_address) == SOME_REJECTED
    assert _parts(remote, header=True) == local.read_bytes()
    assert (tmp_path / "remote.rejects.jsonl").read_bytes() == (
        tmp_path / "local.csv.rejects.jsonl"
    ).read_bytes()
    assert [json.loads(r)["line"] for r in (tmp_path / "remote.rejects.jsonl").read_text().splitlines()] == [
        10, 71, 132, 193, 254,
    ]  # fmt: skip
    # Each worker that scored loaded and verified the version once, for all its partitions.
    loads = cluster_loads(cluster)
    assert all(n <= 1 for n in (w.count(str(model.resolve())) for w in loads.values()))
    assert sum(w.count(str(model.resolve())) for w in loads.values()) >= 1
    # A second run replaces the folder whole; nothing temporary is left beside it.
    assert _score(*args, "--dask", cluster.scheduler_address) == SOME_REJECTED
    assert _parts(remote, header=True) == local.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_relative_paths_are_the_callers_not_the_workers(
    tmp_path: Path, store: Path, cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers opened a relative --in in their own working folder: a file of that name there was
    scored instead, with no warning (a relative --out failed as it was written)."""
    src = _csv_input(tmp_path / "pairs.csv")
    assert (
        _score("--model", store / RF_VERSION, "--in", src, "--out", tmp_path / "local.csv") == SOME_REJECTED
    )
    monkeypatch.chdir(tmp_path)  # the workers' folder stays the one the cluster started in
    args = ("--model", store / RF_VERSION, "--in", "pairs.csv", "--out", "remote", "--chunk-rows", "100")
    assert _score(*args, "--dask", cluster.scheduler_address) == SOME_REJECTED
    assert _parts(tmp_path / "remote", header=True) == (tmp_path / "local.csv").read_bytes()
    assert (tmp_path / "remote.rejects.jsonl").is_file()


def test_a_scheduler_address_without_a_port_is_refused_at_once(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It failed after 60 s of retries, with a traceback."""
    src = _csv_input(tmp_path / "pairs.csv")
    code = _score("--model", store / RF_VERSION, "--in", src, "--out", tmp_path / "o", "--dask", "scheduler")
    assert code == 2 and not (tmp_path / "o").exists()
    assert "error: --dask: expected a Dask scheduler address with its port" in capsys.readouterr().err


def cluster_loads(cluster: Any) -> dict[str, list[str]]:
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        loads: dict[str, list[str]] = client.run(lambda: list(dask_parts.LOADS))
        return loads


def test_jsonl_explained_and_parquet_on_dask(
    tmp_path: Path, store: Path, cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {"pairId": f"p{i}", **{n: (i * 7 + j) % 10 / 10 for j, n in enumerate(FEATURE_NAMES)}}
        for i in range(90)
    ]
    lines = [json.dumps(r) for r in rows] + ["not json", json.dumps({**SEED_ROW, "brandFit": None})]
    src = tmp_path / "pairs.jsonl"
    src.write_text("\n".join(lines) + "\n")
    address = cluster.scheduler_address
    assert (
        _score("--model", store, "--in", src, "--out", tmp_path / "local.jsonl", "--explain") == SOME_REJECTED
    )
    remote = tmp_path / "remote"
    code = _score(
        "--model", store, "--in", src, "--out", remote, "--explain", "--chunk-rows", "25", "--dask", address
    )
    assert code == SOME_REJECTED
    assert _parts(remote, header=False) == (tmp_path / "local.jsonl").read_bytes()
    assert (tmp_path / "remote.rejects.jsonl").read_bytes() == (
        tmp_path / "local.jsonl.rejects.jsonl"
    ).read_bytes()

    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, tmp_path / "pairs.parquet", row_group_size=30)
    assert (
        _score("--model", store, "--in", tmp_path / "pairs.parquet", "--out", tmp_path / "local.parquet") == 0
    )
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)  # the variable, as dask's own tools read it
    assert _score("--model", store, "--in", tmp_path / "pairs.parquet", "--out", tmp_path / "parts") == 0
    assert len(list((tmp_path / "parts").iterdir())) == 3  # a partition per row group
    assert pq.read_table(tmp_path / "parts").equals(pq.read_table(tmp_path / "local.parquet"))


def test_a_worker_keeps_the_last_versions_it_loaded(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long-lived worker scores one version after another: it keeps SCORERS_KEPT of them loaded."""
    monkeypatch.setattr(dask_parts, "_SCORERS", {})
    monkeypatch.setattr(dask_parts, "LOADS", [])
    refs = [
        dask_parts.ModelRef(
            str(store / v), decode_sidecar((store / v / "model.json").read_bytes()).onnx.sha256, explain=False
        )
        for v in (RF_VERSION, GB_VERSION, OTHER_VERSION)
    ]
    first = [dask_parts.worker_scorer(r) for r in refs]
    assert dask_parts.worker_scorer(refs[2]) is first[2]  # kept: not loaded again
    assert len(dask_parts.LOADS) == 3
    assert dask_parts.worker_scorer(refs[0]) is not first[0]  # the oldest was let go, loaded again
    assert dask_parts.LOADS[-1] == refs[0].folder and len(dask_parts._SCORERS) == dask_parts.SCORERS_KEPT


def test_a_worker_refuses_a_version_other_than_the_clients(store: Path) -> None:
    ref = dask_parts.ModelRef(str(store / RF_VERSION), "0" * 64, explain=False)
    with pytest.raises(dask_parts.WorkerRefused, match="is the store shared"):
        dask_parts.worker_scorer(ref)


def test_dask_output_must_be_a_folder(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _csv_input(tmp_path / "pairs.csv")
    (tmp_path / "out.csv").write_text("a file")
    assert (
        _score("--model", store, "--in", src, "--out", tmp_path / "out.csv", "--dask", "tcp://127.0.0.1:1")
        == 2
    )
    assert "with --dask, --out is a folder of part files" in capsys.readouterr().err


def test_dask_never_replaces_a_folder_that_holds_more_than_part_files(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run puts its folder in place of --out and removes the old one: a folder holding the input
    (or anything else) lost it, with the run's exit code the only sign."""
    data = tmp_path / "data"
    data.mkdir()
    src = _csv_input(data / "pairs.csv")
    (data / "notes.txt").write_text("mine")
    dask = ("--dask", "tcp://127.0.0.1:1")  # refused before any cluster is reached
    assert _score("--model", store, "--in", src, "--out", data, *dask) == 2
    assert f"--in {src} is inside --out {data}, which a --dask run replaces whole" in capsys.readouterr().err
    outside = _csv_input(tmp_path / "pairs.csv")
    assert _score("--model", store, "--in", outside, "--out", data, *dask) == 2
    err = capsys.readouterr().err
    assert "holds more than an earlier run's part files (notes.txt, pairs.csv)" in err
    assert sorted(p.name for p in data.iterdir()) == ["notes.txt", "pairs.csv"], "nothing removed"
    (data / "notes.txt").unlink()
    src.unlink()
    (data / "part-00000.csv").write_text("an earlier run's")
    job = Job(outside, data, tmp_path / "rejects.csv")
    check_dask_job(job)  # an earlier run's folder is replaced


def _jsonl(row: dict[str, Any]) -> bytes:
    return json.dumps(row).encode()


_ROW = {"pairId": "p", **SEED_ROW}
_CSV_HEADER = ",".join(["pairId", *FEATURE_NAMES]).encode() + b"\n"
_CSV_ROW = ",".join(["p", *(repr(SEED_ROW[n]) for n in FEATURE_NAMES)]).encode() + b"\n"
EDGES = {
    # a byte-order mark at the start of the file: the first row is a row, not a reject
    "bom.jsonl": b"\xef\xbb\xbf" + b"\n".join([_jsonl(_ROW)] * 4) + b"\n",
    # a lone \r between two fields is JSON whitespace, not the end of a line
    "cr.jsonl": _jsonl(_ROW)
    + b"\n"
    + _jsonl(_ROW).replace(b", ", b",\r", 1)
    + b"\nnot json\n"
    + _jsonl(_ROW)
    + b"\n",
    # a line of spaces is a blank line, no row, with or without a quoted field near it
    "blank.csv": _CSV_HEADER + _CSV_ROW + b"   \n" + _CSV_ROW.replace(b"p,", b'"p,q",', 1) + _CSV_ROW,
    "blank-unquoted.csv": _CSV_HEADER + _CSV_ROW + b"   \n" + _CSV_ROW,
    "header-only.csv": _CSV_HEADER,
    "empty.jsonl": b"",
}


@pytest.mark.parametrize("name", list(EDGES))
def test_edge_files_on_dask_are_the_local_output(
    tmp_path: Path, store: Path, cluster: Any, name: str
) -> None:
    """Each once gave another output on Dask: a reject, a row split in two, a traceback (exit 1)."""
    src = tmp_path / name
    src.write_bytes(EDGES[name])
    local, remote = tmp_path / f"local-{name}", tmp_path / "remote"
    expected = _score("--model", store, "--in", src, "--out", local)
    assert (
        _score("--model", store, "--in", src, "--out", remote, "--dask", cluster.scheduler_address)
        == expected
    )
    chunks = [p.read_bytes() for p in sorted(remote.iterdir())]
    if name.endswith(".csv"):
        chunks = [chunks[0]] + [c.split(b"\n", 1)[1] for c in chunks[1:]]
    assert b"".join(chunks) == local.read_bytes()
    local_rejects = tmp_path / f"local-{name}.rejects.jsonl"
    assert (tmp_path / "remote.rejects.jsonl").read_bytes() == local_rejects.read_bytes()


def test_quoted_fields_that_hold_line_breaks_are_kept_whole_on_dask(
    tmp_path: Path, store: Path, cluster: Any
) -> None:
    """Blocks were cut at any line end: a record whose quoted field held a line break was scored in
    two halves, "scored 3, rejected 3", with the truncated field written out."""
    long = b"x" * 2000  # the break falls after the block's size: a cut there would split the record
    rows = [_CSV_ROW.replace(b"p,", b'"%s\nline ""quoted"" %d",' % (long, i), 1) for i in range(5)]
    src = tmp_path / "multiline.csv"
    src.write_bytes(_CSV_HEADER + b"".join(rows) + _CSV_ROW.rstrip(b"\n"))  # the last line has no \n
    local, remote = tmp_path / "local.csv", tmp_path / "remote"
    assert _score("--model", store, "--in", src, "--out", local) == 0
    args = ("--model", store, "--in", src, "--out", remote, "--chunk-rows", "1")
    assert _score(*args, "--dask", cluster.scheduler_address) == 0
    assert _parts(remote, header=True) == local.read_bytes()
    assert len(list(remote.iterdir())) == 6, "a block per record, none cut inside one"


def test_a_parquet_files_pandas_index_is_kept_on_dask(tmp_path: Path, store: Path, cluster: Any) -> None:
    pd = pytest.importorskip("pandas")
    pq = pytest.importorskip("pyarrow.parquet")
    frame = pd.DataFrame([{**SEED_ROW, "pairId": f"p{i}"} for i in range(20)]).set_index("pairId")
    frame.to_parquet(tmp_path / "pairs.parquet")  # the index is stored as a column with pandas metadata
    assert (
        _score("--model", store, "--in", tmp_path / "pairs.parquet", "--out", tmp_path / "local.parquet") == 0
    )
    remote = tmp_path / "remote"
    assert (
        _score(
            "--model",
            store,
            "--in",
            tmp_path / "pairs.parquet",
            "--out",
            remote,
            "--dask",
            cluster.scheduler_address,
        )
        == 0
    )
    local = pq.read_table(tmp_path / "local.parquet")
    assert "pairId" in local.column_names
    assert pq.read_table(remote).select(local.column_names).equals(local)


@pytest.mark.parametrize("column", ["__line__", "__misfit__"])
def test_a_column_named_like_the_dask_paths_own_is_refused(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str], column: str
) -> None:
    src = tmp_path / "pairs.csv"
    src.write_bytes(_CSV_HEADER.replace(b"pairId", column.encode()) + _CSV_ROW)
    assert (
        _score("--model", store, "--in", src, "--out", tmp_path / "parts", "--dask", "tcp://127.0.0.1:1") == 2
    )
    assert f"the column `{column}` has a name --dask uses for a column of its own" in capsys.readouterr().err
