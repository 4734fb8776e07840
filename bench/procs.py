"""Server processes for the HTTP benchmarks: start, wait for ready, read CPU and memory from /proc, stop."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT_S = 60.0
POLL_S = 0.002


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    ready_s: float | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start(server: Server, cwd: Path) -> float:
    """Start ``server`` and return seconds from spawn to its first 200 on ``/health/ready``."""
    server.log.parent.mkdir(parents=True, exist_ok=True)
    with server.log.open("ab") as log:
        t0 = time.perf_counter()
        server.proc = subprocess.Popen(
            server.cmd, cwd=cwd, env=server.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = t0 + READY_TIMEOUT_S
    while time.perf_counter() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}; see {server.log}")
        if _status(server.port, "GET", "/health/ready") == 200:
            server.ready_s = time.perf_counter() - t0
            return server.ready_s
        time.sleep(POLL_S)
    stop(server)
    raise RuntimeError(f"{server.name} not ready after {READY_TIMEOUT_S:.0f} s; see {server.log}")


def stop(server: Server) -> None:
    proc = server.proc
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        sent = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers={**sent, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _status(port: int, method: str, path: str) -> int | None:
    try:
        return request(port, method, path)[0]
    except (OSError, http.client.HTTPException):
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of stat)


@dataclass(frozen=True)
class MachineCpu:
    """The machine's CPU time so far, all CPUs, in clock ticks: idle (idle and iowait) and total."""

    idle: int
    total: int

    def share_since(self, before: MachineCpu) -> float:
        """The share of all CPUs idle between ``before`` and now (0 to 1)."""
        total = self.total - before.total
        return (self.idle - before.idle) / total if total else 0.0


def machine_idle() -> MachineCpu:
    """The machine's CPU time so far (``/proc/stat``'s first line: user, nice, system, idle, iowait, …)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return MachineCpu(ticks[3] + ticks[4], sum(ticks))


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of ``pid`` in MB (10⁶ bytes, the stricter reading of a MB target)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {key: kb_field_mb(status, key) for key in ("VmRSS", "VmHWM")}


def read_tree(root: int, name: str) -> Iterator[str]:
    """``/proc/PID/NAME`` of ``root`` and of each of its live descendants (e.g. joblib/loky workers);
    those that exit meanwhile are skipped."""
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            text = Path(f"/proc/{pid}/{name}").read_text()
            todo.extend(children(pid))
        except OSError:
            continue
        yield text


def kb_field_mb(text: str, key: str) -> float:
    """A ``KEY: N kB`` line of a /proc file, in MB (10⁶ bytes); 0 when absent."""
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0


def tree_rss_mb(root: int) -> float:
    """Summed VmRSS of ``root`` and all its descendants (e.g. joblib/loky workers), in MB."""
    return sum(kb_field_mb(status, "VmRSS") for status in read_tree(root, "status"))


def children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in os.scandir(f"/proc/{pid}/task"):
        kids.extend(int(k) for k in Path(task.path, "children").read_text().split())
    return kids
