"""Where a ``POST /predict`` spends its CPU in Python: ASGI apps driven in-process, no sockets.

    python bench/request_cost.py                 # the table (writes bench/results-request-cost.json)
    python bench/request_cost.py --profile runtime   # cProfile of one variant, by own time

Each variant answers the seed's row ``--requests`` times, ``--concurrency`` at a time in one event
loop (16, as wrk's ``-c16``; one-row requests in the same turn are scored together), and is timed by
the process's CPU time. uvicorn's own share (HTTP parsing, the socket) is left out, so these are the
parts the runtime controls; wrk in ``bench/run.py`` gives the whole. Variants:

- ``asgi``: the ceiling's work as a bare ASGI callable (``baselines/asgi_service.py``);
- ``ceiling``: the same in Litestar (``baselines/ceiling_service.py``);
- ``scoring ceiling``: the ceiling scoring the row with the same forest, nothing else
  (``baselines/scoring_ceiling_service.py``);
- ``runtime``: as it ships, a plain request answered before Litestar's router;
- ``runtime, Litestar route``: the same request to ``/predict/``, which Litestar routes to the same
  handler and the fast path leaves alone (what every request paid before ``runtime/fastpath.py``);
- ``runtime, METRICS=off``: without the request metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import payloads

HERE = Path(__file__).resolve().parent
OUT = HERE / "results-request-cost.json"
BODY = payloads.seed_body()
VARIANTS: dict[str, tuple[str, dict[str, str], str]] = {
    "asgi": ("asgi_service", {}, "/predict"),
    "ceiling": ("ceiling_service", {}, "/predict"),
    "scoring ceiling": ("scoring_ceiling_service", {}, "/predict"),
    "runtime": ("runtime", {}, "/predict"),
    "runtime, Litestar route": ("runtime", {}, "/predict/"),
    "runtime, METRICS=off": ("runtime", {"METRICS": "off"}, "/predict"),
}


def _scope(path: str, key: str | None = None) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"content-length", str(len(BODY)).encode())]  # fmt: skip
    if key is not None:
        headers.append((b"ml-unit-key", key.encode()))
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": headers,
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip


async def _request(app: Any, path: str, statuses: list[int], key: str | None = None) -> None:
    messages = [{"type": "http.request", "body": BODY, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)  # a client that stays connected
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(_scope(path, key), receive, send)


def _app(module: str, settings: dict[str, str], store: Path, version: str) -> Any:
    if module != "runtime":
        if module == "scoring_ceiling_service":
            os.environ["SCORING_MODEL"] = str(store / version)  # the forest it scores
        sys.path.insert(0, str(HERE / "baselines"))
        spec = importlib.util.spec_from_file_location(module, HERE / "baselines" / f"{module}.py")
        if spec is None or spec.loader is None:
            raise RuntimeError(f"no module {module} in bench/baselines")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[module] = loaded  # Litestar resolves the handlers' annotations through it
        spec.loader.exec_module(loaded)
        return loaded.app
    from ml_matching.runtime.app import create_app
    from ml_matching.runtime.settings import Settings

    env = {"MODELS_DIR": str(store), "MODEL_VERSION": version, "LOG_LEVEL": "WARNING", **settings}
    return create_app(Settings.from_environ(env))


def _measure(name: str, args: argparse.Namespace, profile: bool) -> dict[str, Any]:
    from litestar.testing import TestClient

    module, settings, path = VARIANTS[name]
    app = _app(module, settings, args.store, args.version)
    with TestClient(app) as client:  # runs the app's start-up (the runtime loads its model) and shutdown
        # In the client's event loop, where the app started: every request is timed there.
        return client.blocking_portal.call(_timed, name, app, path, args, profile)  # type: ignore[no-any-return]


async def _timed(name: str, app: Any, path: str, args: argparse.Namespace, profile: bool) -> dict[str, Any]:
    statuses: list[int] = []
    for _ in range(2_000):  # warm-up: caches, the drift window, lazily built parts
        await _request(app, path, statuses)
    per_rep = []
    profiler = cProfile.Profile() if profile else None
    for _ in range(args.reps):
        t0 = time.process_time()
        if profiler:
            profiler.enable()
        for _ in range(args.requests // args.concurrency):
            await asyncio.gather(*(_request(app, path, statuses) for _ in range(args.concurrency)))
        if profiler:
            profiler.disable()
        per_rep.append((time.process_time() - t0) / args.requests * 1e6)
    if set(statuses) != {200}:
        raise RuntimeError(f"{name}: answered {sorted(set(statuses))}")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return {"us_per_request": statistics.median(per_rep), "reps_us": per_rep}


def _child(name: str, args: argparse.Namespace) -> None:
    print(json.dumps(_measure(name, args, args.profile is not None)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, default=HERE / ".work" / "stores" / "serve")
    p.add_argument("--version", help="default: the store's newest RandomForest (what bench/run.py serves)")
    p.add_argument("--requests", type=int, default=32_000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--profile", choices=list(VARIANTS), help="print one variant's profile instead")
    p.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = p.parse_args()
    args.version = args.version or _newest_forest(args.store)
    if args.child or args.profile:
        _child(args.child or args.profile, args)
        return 0
    return _table(args)


def _newest_forest(store: Path) -> str:
    from ml_matching.contract import list_versions, load_version

    forests = [v for v in list_versions(store) if load_version(store, v).sidecar.algorithm == "random_forest"]
    if not forests:
        raise SystemExit(f"no RandomForest version in {store}: run python bench/run.py --only http first")
    return max(forests)


def _table(args: argparse.Namespace) -> int:
    import subprocess

    results = {}
    for name in VARIANTS:  # each in a fresh process: imports and caches of one never help another
        options = {"--store": args.store, "--version": args.version, "--requests": args.requests,
                   "--concurrency": args.concurrency, "--reps": args.reps}  # fmt: skip
        cmd = [sys.executable, __file__, "--child", name, *(str(x) for kv in options.items() for x in kv)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    ceiling = results["ceiling"]["us_per_request"]
    print(f"CPU µs per POST /predict in Python, {args.concurrency} at a time (median of {args.reps})")
    print("| variant | µs/request | × ceiling |\n| --- | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['us_per_request']:.1f} | {r['us_per_request'] / ceiling:.2f} |")
    meta = {"version": args.version, "concurrency": args.concurrency, "requests": args.requests}
    OUT.write_text(json.dumps({**meta, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
