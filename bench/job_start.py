"""What a training job costs the trainer's host beyond the training: two revisions, one run.

    python bench/job_start.py --rev A=14858c4 --rev B=HEAD [--jobs 4] [--reps 3] [--outcomes 300]

Each side runs ``python -m ml_matching.trainer`` from a ``git worktree`` of its revision (as ``ab.py`` does),
on a new store holding ``--outcomes`` synthetic outcomes, and runs ``--jobs`` trainings one after
the other (``POST /train``, which answers when the job is done), for each training configuration:
``fast`` (the tests' small forest: a job that is mostly its start) and ``default`` (the original
write-up's ensemble). Sides alternate within each rep. Per job it records the answer's wall time,
the CPU seconds the trainer's process tree used (the service, and every worker it or its forkserver
started and reaped), the tree's peak proportional memory (PSS, sampled every 0.1 s) during it, and
its resident memory after it. The first job of a trainer and the
later ones are reported apart: a forkserver pays the training side's imports once, at the first job.

Not a test: nothing asserts a timing, and only ratios from the same run mean anything.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import ab
import procs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "job_start"
TOKEN = "bench-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
CONFIGS: dict[str, dict[str, Any]] = {
    "fast": {
        "folds": 3,
        "parity_random_rows": 1000,
        "random_forest": {"n_estimators": 10, "max_depth": 4, "n_jobs": 1},
    },
    "default": {},
}
sys.path.insert(0, str(ROOT / "src"))

from ml_matching.contract import default_feature_set  # noqa: E402  (after the path above)
from ml_matching.training.synth import synthesize  # noqa: E402


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and its live descendants, with the children each of them reaped."""
    fields = (stat[stat.rindex(")") + 2 :].split() for stat in procs.read_tree(root, "stat"))
    return sum(sum(int(v) for v in f[11:15]) for f in fields) / procs.CLK_TCK  # u, s, cu, cs time


def tree_pss_mb(root: int) -> float:
    """Proportional set size of ``root`` and its descendants, in MB: pages a worker shares with the
    forkserver it was forked from are counted once, shared out, unlike RSS."""
    return sum(procs.kb_field_mb(rollup, "Pss") for rollup in procs.read_tree(root, "smaps_rollup"))


class PeakMemory(threading.Thread):
    """The highest :func:`tree_pss_mb` of a process tree, read every 0.1 s until stopped."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.peak_mb, self._done = root, 0.0, threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.1):
            self.peak_mb = max(self.peak_mb, tree_pss_mb(self.root))

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak_mb


def _with_assets(tree: Path) -> Path:
    """The worktree's source folder, with this checkout's built /docs files (a build makes them, git
    has none; trainers before DOCS_CDN was theirs do not start without them). Not measured."""
    assets = Path("ml_matching") / "http" / "_assets"
    if not (tree / "src" / assets).exists():
        shutil.copytree(ROOT / "src" / assets, tree / "src" / assets)
    return tree / "src"


def _outcomes(n: int) -> list[dict[str, Any]]:
    body = synthesize(n, default_feature_set(), seed=5)
    rows = zip(body["features"], body["outcomes"], strict=True)
    return [{"id": f"o{i}", "features": f, "outcome": o} for i, (f, o) in enumerate(rows)]


def run_side(
    src: Path, config: str, jobs: int, outcomes: list[dict[str, Any]], tag: str
) -> list[dict[str, float]]:
    """``jobs`` trainings in a row on one new trainer; each one's wall seconds and tree CPU seconds."""
    work = WORK / tag
    shutil.rmtree(work, ignore_errors=True)
    (work / "store").mkdir(parents=True)
    (work / "config.json").write_text(json.dumps(CONFIGS[config]))
    port = procs.free_port()
    env = {
        "PATH": "/usr/bin:/bin", "PYTHONPATH": str(src), "LOG_LEVEL": "WARNING",
        "MODELS_DIR": str(work / "store"), "ML_TRAINER_HOST": procs.HOST, "ML_TRAINER_PORT": str(port),
        "ML_SERVICE_ADMIN_TOKEN": TOKEN, "RETRAIN_EVERY": "0", "TRAIN_CONFIG": str(work / "config.json"),
    }  # fmt: skip
    server = procs.Server(
        "trainer", [sys.executable, "-m", "ml_matching.trainer"], env, port, work / "trainer.log"
    )
    procs.start(server, work)
    try:
        body = json.dumps({"outcomes": outcomes}).encode()
        status, raw = procs.request(port, "POST", "/outcomes", body, ADMIN)
        if status != 200:
            raise RuntimeError(f"POST /outcomes answered {status}: {raw[:300]!r}")
        runs = []
        for _ in range(jobs):
            peak = PeakMemory(server.pid)
            peak.start()
            cpu, t0 = tree_cpu(server.pid), time.perf_counter()
            status, raw = procs.request(port, "POST", "/train", None, ADMIN)
            seconds = time.perf_counter() - t0
            peak_mb = peak.stop()
            if status != 200 or json.loads(raw)["status"] != "success":
                raise RuntimeError(f"POST /train answered {status}: {raw[:300]!r}")
            # The memory the trainer holds between jobs: with a forkserver, its imports too.
            rss = procs.tree_rss_mb(server.pid)
            cpu_s = tree_cpu(server.pid) - cpu
            runs.append({"seconds": seconds, "cpu_s": cpu_s, "rss_mb": rss, "peak_pss_mb": peak_mb})
        return runs
    finally:
        procs.stop(server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", action="append", required=True, help="NAME=REV (twice)")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--outcomes", type=int, default=300)
    parser.add_argument("--out", type=Path, default=HERE / "results-job-start.json")
    args = parser.parse_args()
    sides = [(name, _with_assets(ab._worktree(rev)), rev) for name, rev, _ in map(ab._side, args.rev)]
    outcomes = _outcomes(args.outcomes)
    runs: dict[str, dict[str, list[dict[str, float]]]] = {c: {n: [] for n, _, _ in sides} for c in CONFIGS}
    for rep in range(args.reps):
        for config in CONFIGS:
            for name, src, _ in sides if rep % 2 == 0 else sides[::-1]:
                got = run_side(src, config, args.jobs, outcomes, f"{name}-{config}")
                runs[config][name].append(got)
                print(f"rep {rep + 1} {config} {name}: {json.dumps(got)}", flush=True)
    report = {
        "sides": {n: r for n, _, r in sides},
        "jobs": args.jobs,
        "outcomes": args.outcomes,
        "configs": {},
    }
    for config, by_side in runs.items():
        report["configs"][config] = {name: _summary(reps) for name, reps in by_side.items()}
    args.out.write_text(json.dumps({**report, "runs": runs}, indent=2) + "\n")
    _print(report, [n for n, _, _ in sides])
    return 0


def _summary(reps: list[list[dict[str, float]]]) -> dict[str, float]:
    """Medians over reps: the first job, and the later ones (each rep's median of its later jobs)."""
    return {
        "first_s": statistics.median(r[0]["seconds"] for r in reps),
        "first_cpu_s": statistics.median(r[0]["cpu_s"] for r in reps),
        "later_s": statistics.median(statistics.median(j["seconds"] for j in r[1:]) for r in reps),
        "later_cpu_s": statistics.median(statistics.median(j["cpu_s"] for j in r[1:]) for r in reps),
        "rss_mb": statistics.median(r[-1]["rss_mb"] for r in reps),
        "later_peak_pss_mb": statistics.median(max(j["peak_pss_mb"] for j in r[1:]) for r in reps),
    }


def _print(report: dict[str, Any], names: list[str]) -> None:
    a, b = names
    ratio = f"{b}/{a}"
    print(f"\n| config | job | {a} s | {b} s | {ratio} | {a} CPU s | {b} CPU s | {ratio} |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for config, sides in report["configs"].items():
        for job in ("first", "later"):
            ws = [sides[n][f"{job}_s"] for n in names]
            cs = [sides[n][f"{job}_cpu_s"] for n in names]
            print(
                f"| {config} | {job} | {ws[0]:.2f} | {ws[1]:.2f} | {ws[1] / ws[0]:.2f} "
                f"| {cs[0]:.2f} | {cs[1]:.2f} | {cs[1] / cs[0]:.2f} |"
            )
    print(f"\n| config | MB between jobs (RSS), {a} / {b} | peak MB of a later job (PSS), {a} / {b} |")
    print("| --- | ---: | ---: |")
    for config, sides in report["configs"].items():
        rss, pss = (f"{sides[a][k]:.0f} / {sides[b][k]:.0f}" for k in ("rss_mb", "later_peak_pss_mb"))
        print(f"| {config} | {rss} | {pss} |")


if __name__ == "__main__":
    raise SystemExit(main())
