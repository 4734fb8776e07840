"""The base install the runtime ships as, for the servers the HTTP benchmarks time against each other.

The benchmark's own environment also holds the original service's FastAPI and pydantic (its
baseline needs them), and Litestar, finding pydantic installed, imports its pydantic plugin at
start: 0.1 s and some megabytes that neither a runtime image nor a base install pays. So the
runtime and both ceilings run from ``bench/.work/base-env``: the project's base dependencies from
``uv.lock`` (``uv sync --locked --no-default-groups``, the project itself editable), as the runtime
image installs them. Without uv they run from this environment, and the results say so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from plan import BENCH, ROOT, log

ENV = BENCH / ".work" / "base-env"


def _uv() -> str | None:
    local = ROOT / ".venv" / "bin" / "uv"  # where the README's setup puts it
    return os.environ.get("UV") or shutil.which("uv") or (str(local) if local.exists() else None)


def base_python() -> tuple[str, str]:
    """The base install's Python (made or brought up to the lock now), and what it is."""
    uv = _uv()
    if uv is None:
        log("http: uv not found; the runtime and the ceilings run from the benchmark's environment")
        return sys.executable, "the benchmark's environment (uv not found for a base install)"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(ENV), "UV_COMPILE_BYTECODE": "1"}
    cmd = [uv, "sync", "-q", "--locked", "--no-default-groups"]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    return str(ENV / "bin" / "python"), "a base install from uv.lock (no pydantic, no scikit-learn)"
