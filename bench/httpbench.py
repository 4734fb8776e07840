"""HTTP benchmarks: the runtime, the seed's design and the framework ceiling under wrk, then batch."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import baseenv
import loadgen
import payloads
import procs
from machine import loadavg, uvicorn_stack
from plan import BENCH, ROOT, Plan, log, median

# Settings the runtime reads: a run starts from none of them, so the runtime serves as it ships.
RUNTIME_VARS = (
    "ML_SERVICE_HOST", "ML_SERVICE_PORT", "LOG_LEVEL", "MODEL_TYPE", "MODELS_DIR", "MODEL_VERSION",
    "ALLOWED_ORIGINS", "ML_SERVICE_ADMIN_TOKEN", "MAX_BATCH_ROWS", "MAX_BODY_BYTES", "ONNX_THREADS",
)  # fmt: skip
BATCH_SIZES = (1, 10, 100, 1_000)
SEED_HANDLER = os.environ.get("SEED_HANDLER", "sync")  # see bench/baselines/seed_service.py
IDLE_FRAMES = ("Condition.wait", "EpollSelector.select", "Queue.get")  # parked threads, idle event loop


def run(
    plan: Plan,
    store: Path,
    version: str,
    seed_joblib: Path,
    work: Path,
    sections: tuple[str, ...],
    results: dict[str, Any],
    profile: bool,
) -> dict[str, Any] | None:
    if loadgen.wrk_path() is None:
        log(f"http: SKIPPED: {loadgen.INSTALL_HINT}")
        skipped = {"skipped": loadgen.INSTALL_HINT}
        if "batch" in sections:
            results["batch"] = skipped
        return skipped if "http" in sections else None
    python, where = baseenv.base_python()
    servers = _servers(store, version, seed_joblib, work, python)
    predict_script = loadgen.post_script(work / "wrk", "predict_1", payloads.seed_body())
    try:
        for s in servers:
            _start_and_warm(s, plan, predict_script)
        _check_same_model(servers)
        out: dict[str, Any] | None = None
        if "http" in sections:
            out = _predict_runs(plan, servers, predict_script)
            out["settings"]["runtime_env"] = where
        runtime = servers[0]
        for s in servers[1:]:
            procs.stop(s)
        if "batch" in sections:
            results["batch"] = _batch(plan, runtime, work)
        if profile:
            results["profile"] = _profile(plan, runtime, predict_script, work)
        return out
    finally:
        for s in servers:
            procs.stop(s)


def _servers(store: Path, version: str, seed_joblib: Path, work: Path, py: str) -> list[procs.Server]:
    """The servers, ``py`` running the runtime and the ceilings (a base install, see baseenv.py)."""
    base = {k: v for k, v in os.environ.items() if k not in RUNTIME_VARS}

    def server(name: str, cmd: list[str], env: dict[str, str]) -> procs.Server:
        port = procs.free_port()
        env = {**base, **env, "BENCH_HOST": procs.HOST, "BENCH_PORT": str(port)}
        env |= {"ML_SERVICE_PORT": str(port)} if name == "runtime" else {}
        return procs.Server(name, cmd, env, port, work / "logs" / f"{name}.log")

    runtime_env = {"MODELS_DIR": str(store), "MODEL_VERSION": version, "ML_SERVICE_HOST": procs.HOST}
    scoring_env = {"SCORING_MODEL": str(store / version)}
    seed_env = {"SEED_MODEL": str(seed_joblib), "SEED_HANDLER": SEED_HANDLER}
    return [
        server("runtime", [py, "-m", "ml_matching.runtime"], runtime_env),
        server("seed", [sys.executable, str(BENCH / "baselines" / "seed_service.py")], seed_env),
        server("ceiling", [py, str(BENCH / "baselines" / "ceiling_service.py")], {}),
        server("asgi", [py, str(BENCH / "baselines" / "asgi_service.py")], {}),
        server("scoring-ceiling", [py, str(BENCH / "baselines" / "scoring_ceiling_service.py")], scoring_env),
    ]


def _start_and_warm(s: procs.Server, plan: Plan, script: Path) -> None:
    readies = []
    for i in range(plan.ready_reps):
        readies.append(procs.start(s, ROOT))
        if i < plan.ready_reps - 1:
            procs.stop(s)
    status, body = procs.request(s.port, "POST", "/predict", payloads.seed_body())
    answer = json.loads(body)
    if status != 200 or not set(answer) >= payloads.RESPONSE_KEYS:  # the runtime adds predictionId
        raise RuntimeError(f"{s.name}: POST /predict answered {status} {body[:200]!r}")
    warm = loadgen.run(s.url + "/predict", script, threads=2, connections=16, seconds=plan.warmup_seconds)
    mem = procs.memory_mb(s.pid)
    s.extra = {
        "ready_s": readies,
        "ready_s_median": statistics.median(readies),
        "rss_mb_after_warmup": mem["VmRSS"],
        "warmup_requests": warm["requests"],
        "seed_row_answer": {k: answer[k] for k in ("score", "confidence", "modelVersion")},
    }
    log(f"http: {s.name} ready in {readies[-1]:.2f} s, RSS {mem['VmRSS']:.1f} MB after warm-up")


def _check_same_model(servers: list[procs.Server]) -> None:
    # The runtime (ONNX, float32), the seed (scikit-learn, float64, rounded to 2 decimals) and the
    # scoring ceiling (the runtime's model.onnx) serve one forest: their scores for the seed row agree.
    score = {s.name: s.extra["seed_row_answer"]["score"] for s in servers}  # type: ignore[index]
    for other, tolerance in (("seed", 0.01), ("scoring-ceiling", 1e-9)):
        if other in score and abs(score["runtime"] - score[other]) > tolerance:
            raise RuntimeError(
                f"runtime and {other} disagree on the seed row: {score['runtime']} vs {score[other]}"
            )


def _measured(
    s: procs.Server, script: Path, path: str, threads: int, connections: int, seconds: int
) -> dict[str, Any]:
    load = loadavg()
    cpu0 = procs.cpu_seconds(s.pid)
    run = loadgen.run(s.url + path, script, threads=threads, connections=connections, seconds=seconds)
    cpu = procs.cpu_seconds(s.pid) - cpu0
    run |= {"server_cpu_s": cpu, "cpu_ms_per_request": cpu / max(run["requests"], 1) * 1e3, "loadavg": load}
    return run


def _predict_runs(plan: Plan, servers: list[procs.Server], script: Path) -> dict[str, Any]:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s.name: {"c1": [], "c16": []} for s in servers}
    for rep in range(plan.http_reps):
        order = servers[rep % len(servers) :] + servers[: rep % len(servers)]  # rotate who goes first
        for s in order:
            for key, threads, conns in (("c1", 1, 1), ("c16", 2, 16)):
                r = _measured(s, script, "/predict", threads, conns, plan.http_seconds)
                runs[s.name][key].append(r)
                log(f"http: rep {rep + 1} {s.name} @{conns}: {r['rps']:,.0f} req/s, p50 {r['p50_ms']:.3f} ms")
    summary = {}
    for s in servers:
        c1, c16 = runs[s.name]["c1"], runs[s.name]["c16"]
        mem = procs.memory_mb(s.pid)
        summary[s.name] = {
            **s.extra,
            "p50_c1_ms": median(c1, "p50_ms"),
            "p99_c1_ms": median(c1, "p99_ms"),
            "rps_c1": median(c1, "rps"),
            "cpu_ms_per_req_c1": median(c1, "cpu_ms_per_request"),
            "rps_c16": median(c16, "rps"),
            "p50_c16_ms": median(c16, "p50_ms"),
            "p99_c16_ms": median(c16, "p99_ms"),
            "cpu_ms_per_req_c16": median(c16, "cpu_ms_per_request"),
            "rss_mb_end": mem["VmRSS"],
            "peak_rss_mb": mem["VmHWM"],
            "all_ok": all(r["ok"] for r in c1 + c16),
            "runs": runs[s.name],
        }
    settings = {"seconds": plan.http_seconds, "reps": plan.http_reps, "warmup_seconds": plan.warmup_seconds}
    settings |= {"ready_reps": plan.ready_reps, "uvicorn": uvicorn_stack(), "seed_handler": SEED_HANDLER}
    return {"settings": settings, "servers": summary}


def _batch(plan: Plan, runtime: procs.Server, work: Path) -> dict[str, Any]:
    names = payloads.SEED_ROW.keys()
    status, body = procs.request(
        runtime.port, "POST", "/predict/batch", payloads.batch_body(10, tuple(names))
    )
    if status != 200 or len(json.loads(body)["predictions"]) != 10:
        raise RuntimeError(f"runtime: POST /predict/batch answered {status} {body[:200]!r}")
    sizes = {}
    for n in BATCH_SIZES:
        body = payloads.batch_body(n, tuple(names))
        script = loadgen.post_script(work / "wrk", f"batch_{n}", body)
        runs = []
        for rep in range(plan.batch_reps):
            r = _measured(
                runtime,
                script,
                "/predict/batch",
                plan.batch_threads,
                plan.batch_connections,
                plan.batch_seconds,
            )
            r |= {"rows_per_s": r["rps"] * n, "cpu_us_per_row": r["cpu_ms_per_request"] * 1e3 / n}
            runs.append(r)
            log(f"batch: rep {rep + 1} {n} rows/request: {r['rows_per_s']:,.0f} rows/s")
        sizes[str(n)] = {
            "body_bytes": len(body),
            "rps": median(runs, "rps"),
            "rows_per_s": median(runs, "rows_per_s"),
            "p50_ms": median(runs, "p50_ms"),
            "p99_ms": median(runs, "p99_ms"),
            "cpu_us_per_row": median(runs, "cpu_us_per_row"),
            "all_ok": all(r["ok"] for r in runs),
            "runs": runs,
        }
    settings = {"threads": plan.batch_threads, "connections": plan.batch_connections}
    return {"settings": settings | {"seconds": plan.batch_seconds, "reps": plan.batch_reps}, "sizes": sizes}


def _profile(plan: Plan, runtime: procs.Server, script: Path, work: Path) -> dict[str, Any]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        return {"skipped": "py-spy is not installed: pip install py-spy"}
    seconds = max(plan.http_seconds, 5)
    raw = work / "profile-runtime.txt"
    cmd = [
        py_spy,
        "record",
        "-p",
        str(runtime.pid),
        "-d",
        str(seconds),
        "-r",
        "250",
        "-f",
        "raw",
        "-o",
        str(raw),
    ]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1)  # let py-spy attach before the load starts
        loadgen.run(runtime.url + "/predict", script, threads=2, connections=16, seconds=seconds)
        _, err = spy.communicate(timeout=seconds + 60)
    finally:
        if spy.poll() is None:
            spy.kill()
    if spy.returncode != 0 or not raw.exists():
        return {"error": f"py-spy failed: {err.decode(errors='replace').strip()[-300:]}"}
    return {"collapsed_stacks": str(raw), "seconds": seconds, **_top_frames(raw)}


def _top_frames(raw: Path, n: int = 25) -> dict[str, Any]:
    """Self and inclusive shares of busy samples; threads parked in a wait are idle, not work.

    py-spy's raw format is "frame;frame;…;leaf count" per line; the leaf is where time was spent.
    Inclusive shares are listed for the service's own frames (ml_matching/, onnxruntime) only.
    """
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    busy = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any(idle in frames[-1] for idle in IDLE_FRAMES):
            continue
        busy += int(count)
        own[frames[-1]] = own.get(frames[-1], 0) + int(count)
        for f in set(frames):
            if "ml_matching/" in f or "onnxruntime" in f:
                incl[f] = incl.get(f, 0) + int(count)

    def ranked(counts: dict[str, int]) -> list[dict[str, Any]]:
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:n]
        return [{"frame": f, "share": c / busy} for f, c in top]

    return {"self": ranked(own), "inclusive_service_frames": ranked(incl), "busy_samples": busy}
