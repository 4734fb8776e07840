"""Training at scale: wall time of ``ml-matching fit`` at 10k and 100k rows, here and on Dask.

    python bench/fit_scale.py                       # 10k and 100k rows; default model and --model all;
                                                    # locally and on a LocalCluster of 2 workers
    python bench/fit_scale.py --before REV          # also the code of git revision REV (--model all,
                                                    # the largest size), run beside this one
    python bench/fit_scale.py --rows 10000          # sizes of your choice
    python bench/fit_scale.py --scheduler tcp://SCHEDULER:8786 --rows 100000   # a real cluster
    python bench/fit_scale.py --report              # re-print the tables of bench/results-fit.json

Each fit is a fresh process (``python -m ml_matching fit --json`` into an empty store) on synthetic
outcomes (``synth``, seed 42, made once per size under ``bench/.work/fit-scale``). Wall time is the
process's; CPU is its user + system time with its joblib workers (reaped children), plus, on Dask,
what the cluster's worker processes spent meanwhile (a LocalCluster's are children of this process;
a remote cluster's are not counted). On Dask the fit also checks the promise that matters: the same
``model.onnx`` bytes as the local fit of the same data and model.

Not a test: it prints Markdown tables and writes ``bench/results-fit.json``. The machines here have 2
cores shared with others; compare figures of one run (the table gives ratios), and read the load
average recorded beside each fit. A LocalCluster of 2 workers on 2 cores is not expected to be
faster: it shows that the path works and what it costs. A real cluster (``--scheduler``) needs
ml-matching with the ``train`` extra, the same versions, on every worker, and the data only where
this script runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fitcost
from procs import children, cpu_seconds

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "fit-scale"
OUT = HERE / "results-fit.json"
SIZES = (10_000, 100_000)
MODELS = ("random_forest", "all")  # the default model, and both
TIMEOUT_S = 3600
#: The 100k-row ``fit --model all`` of the code before this speedup, timed by phase with the machine
#: shared (load average about 3 on 2 cores) when the work on issue #20 began; its phases are below.
MEASURED_AT_START = {
    "rows": 100_000,
    "model": "all",
    "wall_s": 464.9,
    "note": "code before the speedup, phases timed in-process, load average 2.4-3.4 on 2 cores",
    "phases_s": {
        "random_forest: 5 folds": 48.9,
        "random_forest: CalibratedClassifierCV (5 folds again + final fit)": 54.9,
        "random_forest: permutation importance": 6.7,
        "gradient_boosting: 5 folds (2 at a time)": 241.8,
        "gradient_boosting: final fit": 96.7,
        "gradient_boosting: permutation importance": 6.7,
        "export, parity, explainer (both)": 3.2,
        "cards and publishing (both)": 2.3,
        "loading, baseline, the rest": 3.7,
    },
}


def main() -> int:
    args = _arguments()
    if args.report:
        _print(json.loads(OUT.read_text()))
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    before = _checkout(args.before) if args.before else None
    runs: list[dict[str, Any]] = []
    with _scheduler(args.scheduler) as (address, cluster_pids):
        for rows in args.rows:
            data = _synth(rows)
            for model in MODELS:
                old = None
                if before is not None and rows == max(args.rows) and model == "all":
                    old = _fit(data, model, None, [], src=before, label=f"before ({args.before})")
                    runs.append(old)
                local = _fit(data, model, None, [])
                runs.append(local)
                if old is not None:
                    old["same_onnx_as_local"] = _same(old, local)
                on_dask = _fit(data, model, address, cluster_pids)
                on_dask["same_onnx_as_local"] = _same(on_dask, local)
                runs.append(on_dask)
    result = {
        "meta": _meta(args),
        "runs": runs,
        "measured_at_start": MEASURED_AT_START,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    _print(result)
    print(f"\nwrote {OUT.relative_to(ROOT)}")
    return 0


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same(run: dict[str, Any], local: dict[str, Any]) -> dict[str, bool]:
    """Per algorithm, whether ``run`` wrote the same model.onnx bytes as the local fit."""
    return {a: sha == local["onnx_sha256"].get(a) for a, sha in run["onnx_sha256"].items()}


def _arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, nargs="+", default=list(SIZES), help="sizes to train on")
    p.add_argument("--scheduler", help="a running Dask scheduler (default: a LocalCluster of 2 workers)")
    p.add_argument("--before", metavar="REV", help="also time this git revision's code (--model all)")
    p.add_argument("--report", action="store_true", help="print the tables of bench/results-fit.json")
    return p.parse_args()


@contextmanager
def _scheduler(address: str | None) -> Iterator[tuple[str, list[int]]]:
    """The scheduler to fit on, and the pids whose CPU is the cluster's (none for a remote one)."""
    if address is not None:
        yield address, []
        return
    import distributed

    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address, _descendants(os.getpid())


def _descendants(pid: int) -> list[int]:
    out, todo = [], children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def _synth(rows: int) -> Path:
    return fitcost.synth(rows, WORK, ROOT)


def _checkout(rev: str) -> Path:
    """``src/`` and ``schemas/`` of ``rev`` (``git archive``; the working tree is left alone)."""
    folder = WORK / f"rev-{rev}"
    if not (folder / "src").exists():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", rev, "src", "schemas"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        ).stdout
        tar = folder / "src.tar"
        tar.write_bytes(archive)
        with tarfile.open(tar) as t:
            t.extractall(folder, filter="data")
        tar.unlink()
    return folder / "src"


def _fit(
    data: Path, model: str, address: str | None, cluster: list[int], src: Path | None = None, label: str = ""
) -> dict[str, Any]:
    where = label or ("dask" if address else "local")
    store = WORK / "stores" / f"{data.stem}-{model}-{where.split()[0]}"
    shutil.rmtree(store, ignore_errors=True)
    cmd = [sys.executable, "-m", "ml_matching", "fit", "--data", str(data), "--model", model]
    cmd += ["--artifacts", str(store), "--json"] + (["--dask", address] if address else [])
    env = {**os.environ, "PYTHONPATH": str(src)} if src else {**os.environ}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    log = store.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    load = _loadavg()
    cluster_cpu = _cpu(cluster)
    _children_cpu_delta()
    lines: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = threading.Thread(target=_progress, args=(proc, t0, lines))
    reader.start()
    out = proc.stdout.read() if proc.stdout else b""
    proc.wait(timeout=TIMEOUT_S)
    wall = time.perf_counter() - t0
    reader.join()
    log.write_text("".join(f"[{t:8.2f}s] {line}" for t, line in lines))
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): see {log}")
    fit_cpu = _children_cpu_delta()
    result = json.loads(out)
    versions = {v["algorithm"]: Path(v["path"]) for v in result["versions"]}
    onnx = {a: _sha256(versions[a] / "model.onnx") for a in sorted(versions)}
    run = {
        "rows": int(data.stem.rsplit("_", 1)[1]),
        "model": model,
        "where": where,
        "wall_s": round(wall, 2),
        "cpu_s": round(fit_cpu + _cpu(cluster) - cluster_cpu, 2),
        "loadavg_before": load,
        "loadavg_after": _loadavg(),
        "onnx_sha256": onnx,
        "phases_s": _phases(lines, wall),
        "cv_roc_auc": {v["algorithm"]: round(v["metrics"]["cv"]["rocAuc"], 6) for v in result["versions"]},
    }
    print(
        f"{run['rows']:>7} {model:<14} {where:<22} wall {run['wall_s']:7.1f} s  cpu {run['cpu_s']:7.1f} s"
        f"  load {load}",
        flush=True,
    )
    return run


def _progress(proc: subprocess.Popen[bytes], t0: float, lines: list[tuple[float, str]]) -> None:
    """Each progress line of the fit (stderr) with the second it arrived."""
    assert proc.stderr is not None
    for raw in proc.stderr:
        lines.append((time.perf_counter() - t0, raw.decode(errors="replace")))


#: Progress lines that end a phase of one algorithm's training, in order (the names of the phases).
MILESTONES = (
    ("cross-validation (+ final fit)", r": fold (\d+)/\1 "),
    ("calibration", r": calibration "),
    ("held-out metrics", r": holdout roc_auc="),
    ("permutation importance, export, parity", r": parity over "),
    ("explainer and its check", r": explanations "),
)


def _phases(lines: list[tuple[float, str]], wall: float) -> dict[str, float]:
    """Seconds per phase, from when the fit's progress lines arrived (each phase ends at its line)."""
    out: dict[str, float] = {}
    last = 0.0
    for t, line in lines:
        algorithm = line.split(":", 1)[0]
        if algorithm == "logistic_regression":  # the baseline's lines: its holdout ends the start
            if "holdout" in line:
                out["start: data, split, logistic baseline"] = round(t - last, 2)
                last = t
            continue
        for name, pattern in MILESTONES:
            if re.search(pattern, line):
                out[f"{algorithm}: {name}"] = round(t - last, 2)
                last = t
    out["model cards, publishing, exit"] = round(wall - last, 2)
    return out


_last_children_cpu = [0.0]


def _children_cpu_delta() -> float:
    """CPU of the children reaped since the last call (the fit process and the workers it reaped)."""
    usage = os.times()
    total = usage.children_user + usage.children_system
    delta, _last_children_cpu[0] = total - _last_children_cpu[0], total
    return delta


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:  # exited
            continue
    return total


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    from importlib.metadata import version

    def v(name: str) -> str:
        try:
            return version(name)
        except Exception:  # a library that is not installed is reported as such
            return "not installed"

    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(["python", "bench/fit_scale.py", *sys.argv[1:]]),
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "scheduler": "LocalCluster(n_workers=2, processes=True, threads_per_worker=1)"
        if args.scheduler is None
        else "given (--scheduler)",
        "libraries": {n: v(n) for n in ("scikit-learn", "joblib", "dask", "distributed", "numpy")},
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _same_cell(same: dict[str, bool] | bool | None) -> str:
    if same is None:
        return "—"
    if isinstance(same, bool):  # results written before the comparison was per algorithm
        return "yes" if same else "**no**"
    return ", ".join(f"{a}: {'yes' if ok else '**no**'}" for a, ok in same.items())


def _print(result: dict[str, Any]) -> None:
    runs = result["runs"]
    local = {(r["rows"], r["model"]): r for r in runs if r["where"] == "local"}
    print(
        f"\n## `ml-matching fit` wall time ({result['meta']['nproc']} cores, {result['meta']['cpu_model']})\n"
    )
    print("| rows | model | where | wall (s) | CPU (s) | wall / local | same model.onnx | load before |")
    print("| ---: | --- | --- | ---: | ---: | ---: | --- | --- |")
    for r in runs:
        base = local.get((r["rows"], r["model"]))
        ratio = f"{r['wall_s'] / base['wall_s']:.2f}" if base else "—"
        same = _same_cell(r.get("same_onnx_as_local"))
        print(
            f"| {r['rows']:,} | {r['model']} | {r['where']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {ratio} "
            f"| {same} | {r['loadavg_before']} |"
        )
    biggest = max(r["rows"] for r in runs)
    compared = [r for r in runs if r["rows"] == biggest and r["model"] == "all"]
    print(f"\n## Where the time goes: `fit --model all` at {biggest:,} rows (s)\n")
    print("| phase | " + " | ".join(r["where"] for r in compared) + " |")
    print("| --- |" + " ---: |" * len(compared))
    for phase in dict.fromkeys(p for r in compared for p in r["phases_s"]):
        print(f"| {phase} | " + " | ".join(str(r["phases_s"].get(phase, "—")) for r in compared) + " |")
    print("| **total** | " + " | ".join(f"**{r['wall_s']:.1f}**" for r in compared) + " |")
    start = result["measured_at_start"]
    print(f"\nBefore the speedup, measured at the start: {start['wall_s']} s ({start['note']}):\n")
    print("| phase | s |\n| --- | ---: |")
    for phase, seconds in start["phases_s"].items():
        print(f"| {phase} | {seconds} |")


if __name__ == "__main__":
    raise SystemExit(main())
