"""Batch scoring: rows/s and peak RSS of ``ml-matching score`` for files of 1M and 10M rows.

    python bench/score.py --explain                # CSV, Parquet at 1M and 10M rows; JSON Lines at 1M
    python bench/score.py --rows 1000000 --formats csv --chunk-rows 50000 10000
    python bench/score.py --model artifacts/20261126_143000      # another version

Each run is ``ml-matching score`` in a fresh process (the command as users run it, in-process
scoring, no HTTP); its peak RSS is the process's VmHWM at exit, its rate the rows over its wall
time (start to exit: imports and model verification included). The point is that peak RSS
does not grow with the file: one chunk is in memory at a time.

The model is the default RandomForest (100 trees, depth 10) trained on 5,000 synthetic rows (the
store of ``bench/memory.py`` when it exists, else one trained here; that needs the train extra).
The input holds a ``pairId`` column and the 19 features, each uniform within its declared range
(``schemas/features.default.json``), drawn with NumPy (seed 42): a block of 200,000 distinct rows,
repeated to the size asked for, each line with its own id. Not a test: it prints a table and
writes ``bench/results-score.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "score"
OUT = HERE / "results-score.json"
BLOCK = 200_000
#: ``ml-matching ARGS`` in this process, then its peak RSS: VmHWM, this process's own (the
#: ``ru_maxrss`` of ``wait4`` also counts the parent's memory, which the child shared until exec).
CHILD = """
import atexit, sys
from pathlib import Path
from ml_matching.cli import main
def peak():
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    print("peak-rss-kb", line.split()[1], file=sys.stderr)
atexit.register(peak)
sys.exit(main(sys.argv[1:]))
"""


def model_folder() -> Path:
    """A version of the default RandomForest: bench/memory.py's, or one trained here."""
    for store in (HERE / ".work" / "memory" / "store-5000", WORK / "store"):
        versions = sorted(store.glob("2*")) if store.is_dir() else []
        if versions:
            return versions[0]
    data, store = WORK / "data-5000.json", WORK / "store"
    WORK.mkdir(parents=True, exist_ok=True)
    run = [sys.executable, "-m", "ml_matching"]
    subprocess.run(
        [*run, "synth", "--rows", "5000", "--out", str(data)], check=True, stdout=subprocess.DEVNULL
    )
    subprocess.run(
        [*run, "fit", "--data", str(data), "--artifacts", str(store)], check=True, capture_output=True
    )
    return sorted(store.glob("2*"))[0]


def _block(names: list[str], lo: np.ndarray, hi: np.ndarray) -> list[bytes]:
    """``BLOCK`` distinct rows, each line the 19 features as text (the id is added per line)."""
    x = lo + np.random.default_rng(42).uniform(size=(BLOCK, len(names))) * (hi - lo)
    return [(",".join(map(repr, row)) + "\n").encode() for row in np.round(x, 6).tolist()]


def input_file(fmt: str, rows: int, features: list[dict[str, Any]]) -> Path:
    """The input of ``rows`` rows in format ``fmt`` (written once, kept in bench/.work/score)."""
    path = WORK / f"in-{rows}.{fmt}"
    if path.exists():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    names = [f["name"] for f in features]
    lo = np.array([f.get("min", 0.0) for f in features])
    hi = np.array([f.get("max", 1.0) for f in features])
    if fmt == "parquet":
        _parquet(path, rows, names, lo, hi)
        return path
    block = _block(names, lo, hi)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        if fmt == "csv":
            fh.write((",".join(["pairId", *names]) + "\n").encode())
        for start in range(0, rows, BLOCK):
            lines = block[: min(BLOCK, rows - start)]
            if fmt == "csv":
                fh.write(b"".join(b"p%d," % (start + i) + line for i, line in enumerate(lines)))
            else:
                keys = [f'"{n}":'.encode() for n in names]
                fh.write(
                    b"".join(
                        b'{"pairId":"p%d",' % (start + i)
                        + b",".join(k + v for k, v in zip(keys, line.rstrip().split(b","), strict=True))
                        + b"}\n"
                        for i, line in enumerate(lines)
                    )
                )
    tmp.rename(path)
    return path


def _parquet(path: Path, rows: int, names: list[str], lo: np.ndarray, hi: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.round(lo + np.random.default_rng(42).uniform(size=(BLOCK, len(names))) * (hi - lo), 6)
    schema = pa.schema([("pairId", pa.string()), *((n, pa.float64()) for n in names)])
    with pq.ParquetWriter(path.with_suffix(".tmp"), schema) as writer:
        for start in range(0, rows, BLOCK):
            n = min(BLOCK, rows - start)
            ids = pa.array([f"p{start + i}" for i in range(n)])
            writer.write_table(
                pa.Table.from_arrays([ids, *(pa.array(x[:n, j]) for j in range(len(names)))], schema=schema)
            )
    path.with_suffix(".tmp").rename(path)


def measure(model: Path, source: Path, chunk_rows: int, rows: int, explain: bool) -> dict[str, Any]:
    """One ``ml-matching score`` in a fresh process: wall time, peak RSS, what it printed last."""
    out, log = WORK / f"out{source.suffix}", WORK / "score.log"
    args = [
        "score",
        "--model",
        str(model),
        "--in",
        str(source),
        "--out",
        str(out),
        "--chunk-rows",
        str(chunk_rows),
    ]
    args += ["--explain"] if explain else []
    cmd = [sys.executable, "-c", CHILD, *args]
    started = time.perf_counter()
    with open(log, "w") as err_file:
        proc = subprocess.Popen(cmd, stderr=err_file)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = log.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {proc.returncode}:\n{err}")
    *_, summary, peak = err.strip().splitlines()
    result = {
        "format": source.suffix.lstrip("."),
        "rows": rows,
        "chunk_rows": chunk_rows,
        "explain": explain,
        "input_mb": source.stat().st_size / 1e6,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": int(peak.split()[1]) * 1024 / 1e6,
        "summary": summary.replace(str(ROOT) + "/", ""),
        "command": "ml-matching " + " ".join(args).replace(str(ROOT) + "/", ""),
    }
    out.unlink(missing_ok=True)
    Path(f"{out}.rejects.jsonl").unlink(missing_ok=True)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument(
        "--formats", nargs="+", default=["csv", "jsonl", "parquet"], choices=["csv", "jsonl", "parquet"]
    )
    p.add_argument(
        "--big-formats", nargs="+", default=["csv", "parquet"], help="formats also run beyond 1M rows"
    )
    p.add_argument("--chunk-rows", type=int, nargs="+", default=[20_000], help="default: the command's")
    p.add_argument("--explain", action="store_true", help="also time --explain (CSV, the smallest size)")
    p.add_argument("--model", type=Path, help="a version folder (default: the default RandomForest)")
    args = p.parse_args()
    model = args.model or model_folder()
    features = json.loads((model / "model.json").read_text())["features"]
    runs = []
    for rows in args.rows:
        for fmt in args.formats:
            if rows > 1_000_000 and fmt not in args.big_formats:
                continue
            source = input_file(fmt, rows, features)
            for chunk in args.chunk_rows:
                runs.append(measure(model, source, chunk, rows, explain=False))
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    if args.explain:
        runs.append(
            measure(
                model, input_file("csv", min(args.rows), features), args.chunk_rows[0], min(args.rows), True
            )
        )
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}
    OUT.write_text(json.dumps({"model": str(model.relative_to(ROOT) if model.is_relative_to(ROOT) else model),
                               "machine": machine, "runs": runs}, indent=2) + "\n")  # fmt: skip
    print(table(runs))
    return 0


def table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| format | rows | chunk rows | explain | input (MB) | wall (s) | rows/s | CPU (s) | peak RSS (MB) |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        lines.append(
            f"| {r['format']} | {r['rows']:,} | {r['chunk_rows']:,} | {'yes' if r['explain'] else 'no'} | "
            f"{r['input_mb']:,.0f} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | {r['cpu_seconds']:.1f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
