"""The machine and software a run measured: CPU, memory, load, library versions, git commit."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import loadgen
from plan import ROOT, Plan

LIBRARIES = (
    "litestar", "msgspec", "onnxruntime", "numpy", "uvicorn", "h11", "httptools", "uvloop", "anyio",
    "scikit-learn", "skl2onnx", "onnx", "joblib", "fastapi", "starlette", "pydantic", "pydantic-core",
)  # fmt: skip


def meta(plan: Plan, sections: tuple[str, ...]) -> dict[str, Any]:
    return {
        "date": now(),
        "quick": plan.quick,
        "sections": list(sections),
        "plan": {
            k: (v if not isinstance(v, dict) else {str(a): b for a, b in v.items()})
            for k, v in vars(plan).items()
        },
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": {
            "nproc": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_model": _cpu_model(),
            "mem_total_mb": _mem_total_mb(),
            "loadavg_start": loadavg(),
        },
        "libraries": {name: dist(name) for name in LIBRARIES},
        "wrk": loadgen.wrk_version(),
        "node": _command_output(["node", "--version"]),
        "git": _git(),
    }


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0


def dist(name: str) -> str | None:
    try:
        return dist_version(name)
    except PackageNotFoundError:
        return None


def uvicorn_stack() -> str:
    # uvicorn picks httptools and uvloop when they are installed (uvicorn[standard]), else h11 and asyncio.
    http = "httptools" if dist("httptools") else "h11"
    loop = "uvloop" if dist("uvloop") else "asyncio"
    return f"uvicorn {dist('uvicorn')} ({http}, {loop})"


def _command_output(cmd: list[str]) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _git() -> dict[str, Any]:
    status = _command_output(["git", "status", "--porcelain"])
    return {"commit": _command_output(["git", "rev-parse", "HEAD"]) or "unknown", "dirty": bool(status)}
