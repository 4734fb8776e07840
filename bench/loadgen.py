"""wrk, the HTTP load generator: one POST body per run, results read back as JSON from wrk's ``done`` hook.

wrk's ``--latency`` table rounds to two decimals of its unit; the ``done`` hook below prints the same
histogram's percentiles unrounded (microseconds), with request, byte and error counts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

INSTALL_HINT = "wrk is not installed: `apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`"
MARK = "WRK_JSON "

_LUA = """\
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,' ..
    '"errors":{{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f}},' ..
    '"latency_us":{{"min":%.1f,"mean":%.1f,"max":%.1f,"stdev":%.1f,' ..
    '"p50":%.1f,"p75":%.1f,"p90":%.1f,"p99":%.1f,"p999":%.1f}}}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"""


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str | None:
    path = wrk_path()
    if path is None:
        return None
    out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else None


def post_script(folder: Path, name: str, body: bytes) -> Path:
    """Write ``body`` and a Lua script that POSTs it as JSON; return the script's path."""
    folder.mkdir(parents=True, exist_ok=True)
    body_path = (folder / f"{name}.json").resolve()
    body_path.write_bytes(body)
    script = folder / f"{name}.lua"
    script.write_text(_LUA.format(body=body_path, mark=MARK))
    return script


def run(url: str, script: Path, *, threads: int, connections: int, seconds: int) -> dict[str, Any]:
    """One wrk run; requests/s, latency percentiles in ms, and error counts."""
    path = wrk_path()
    if path is None:
        raise RuntimeError(INSTALL_HINT)
    cmd = [
        path, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
        "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    return _parse(out.stdout, threads, connections)


def _parse(stdout: str, threads: int, connections: int) -> dict[str, Any]:
    line = next((ln for ln in stdout.splitlines() if ln.startswith(MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{stdout}")
    raw = json.loads(line[len(MARK) :])
    seconds = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    errors = raw["errors"]
    return {
        "threads": threads,
        "connections": connections,
        "requests": int(raw["requests"]),
        "seconds": round(seconds, 3),
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "p50_ms": lat["p50"] / 1e3,
        "p75_ms": lat["p75"] / 1e3,
        "p90_ms": lat["p90"] / 1e3,
        "p99_ms": lat["p99"] / 1e3,
        "p999_ms": lat["p999"] / 1e3,
        "mean_ms": lat["mean"] / 1e3,
        "max_ms": lat["max"] / 1e3,
        "errors": {k: int(v) for k, v in errors.items()},
        "ok": not any(errors.values()),
        "wrk_latency_table": _latency_table(stdout),
    }


def _latency_table(stdout: str) -> dict[str, str]:
    # wrk's own --latency lines ("50%  1.23ms"), kept as printed for a human cross-check.
    table, inside = {}, False
    for ln in stdout.splitlines():
        if ln.strip() == "Latency Distribution":
            inside = True
            continue
        parts = ln.split()
        if inside and len(parts) == 2 and parts[0].endswith("%"):
            table[parts[0]] = parts[1]
        elif inside:
            break
    return table
