"""Training cost: wall time and peak memory of ``ml-matching fit`` as a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from procs import tree_rss_mb

FIT_TIMEOUT_S = 3600
SAMPLE_S = 0.05


def synth(rows: int, folder: Path, cwd: Path) -> Path:
    """Synthetic outcomes (seed 42), made once per size and reused."""
    out = folder / f"synthetic_{rows}.json"
    if not out.exists():
        cmd = [
            sys.executable,
            "-m",
            "ml_matching.training",
            "synth",
            "--rows",
            str(rows),
            "--seed",
            "42",
            "--out",
            str(out),
        ]
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, timeout=600)
    return out


def fit(
    data: Path, store: Path, cwd: Path, log: Path, model: str = "all", calibrate: str = "auto"
) -> dict[str, Any]:
    """Run ``fit --json`` into an empty ``store``; wall time, peak RSS, and the versions it wrote.

    ``max_rss_mb`` is the kernel's peak for the fit process (``wait4``); ``tree_peak_rss_mb`` is the
    largest sampled sum over the process and its children (joblib workers), every 50 ms.
    """
    cmd = [sys.executable, "-m", "ml_matching.training", "fit", "--data", str(data), "--model", model]
    cmd += ["--artifacts", str(store), "--calibrate", calibrate, "--json"]
    log.parent.mkdir(parents=True, exist_ok=True)
    out = log.with_suffix(".json")
    with log.open("wb") as err, out.open("wb") as stdout:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, stderr=err)
        peak = _sample_tree(proc.pid, t0 + FIT_TIMEOUT_S)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"fit failed ({proc.returncode}): see {log}")
    result = json.loads(out.read_bytes())
    return {
        "rows": _rows(data),
        "model": model,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_mb": usage.ru_maxrss * 1024 / 1e6,  # ru_maxrss is in KiB on Linux
        "tree_peak_rss_mb": peak,
        "versions": {v["algorithm"]: v["version"] for v in result["versions"]},
        "active": result["active"],
    }


def _sample_tree(pid: int, deadline: float) -> float:
    # Until the fit process exits (a zombie, not yet reaped) or overruns; then it is killed.
    peak = 0.0
    while not _is_zombie(pid):
        if time.perf_counter() > deadline:
            os.kill(pid, 9)
            break
        peak = max(peak, tree_rss_mb(pid))
        time.sleep(SAMPLE_S)
    return peak


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def _rows(data: Path) -> int:
    return int(data.stem.rsplit("_", 1)[-1])
