"""Where an experiment's cost goes in the runtime, part by part, and how many rows a scoring call holds.

    python bench/experiment_parts.py          # ~3 min (writes bench/results-experiment-parts.json)
    python bench/experiment_parts.py --per-turn 7 --out bench/results-experiment-parts-7.json

1. **Parts, paired in one process.** The runtime's ASGI app serves configuration ``experiment`` of
   ``experiments.py`` (control and a candidate at 50 %, every row in the ledger, a real trainer
   process), driven as in ``experiment_cost.py``: 16 keyed requests at a time in one event loop
   (``--per-turn``; under wrk a turn held 7 on average, part 2), a new ``ML-Unit-Key`` each, no
   sockets. Fewer rows a turn weigh what each scoring call costs more: its fixed cost is shared by
   fewer requests. Each round times every variant below once, in rotating
   order, in the same process; a variant's figure is the median over the rounds of its difference
   to ``as is`` in the same round. Separate processes (``experiment_cost.py``) drift apart by more
   than a part costs; one process keeps the heap, the caches and the machine's hour the same.

   - ``as is``;
   - ``not handed``: each group's facts are gathered for the ledger process, then not handed to it;
   - ``no ledger rows``: the arms are counted, no ledger row is made;
   - ``one version``: the candidate's units scored by control's scorer (one onnxruntime call a turn
     instead of two; the ledger as is);
   - ``one model, two calls``: the candidate's units scored by a second scorer on control's session
     (two calls a turn, as is, but one model's memory to walk);
   - ``no key``: requests without ``ML-Unit-Key`` (control, outside the experiment, no ledger row).

   CPU is the serving process's (every thread), per request. The ledger process's CPU, spent on
   another core, is given apart, per row it sent. These switches reach into the runtime's
   internals for the run; the runtime has no such settings.

2. **Rows per scoring call under wrk.** A runtime process serves ``experiment`` under
   ``wrk -t2 -c16`` for ``--seconds``, with its coalescer counting, at each end of a turn, the rows
   queued and the versions they span (one onnxruntime call each). At 16 requests in-process every
   turn holds 16 rows; under wrk a turn holds what arrived during the last one.

Not a test: only figures from one run mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import copy
import dataclasses
import gc
import itertools
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import experiments
import loadgen
import procs
from request_cost import _request

HERE = Path(__file__).resolve().parent
OUT = HERE / "results-experiment-parts.json"
CONFIG = "experiment"
#: Requests a variant is timed on per round (about; a whole number of turns).
REQUESTS = 4_000


def _switches(app: Any) -> dict[str, Callable[[], contextlib.AbstractContextManager[None]]]:
    """Each variant's switch: a context manager that turns its part off inside the running app."""
    from ml_matching.runtime.serving import Recorder, Serving

    serving: Serving = app.state.serving
    recorder = serving.recorder
    arms = serving.route(None)[1]
    assert arms is not None, "the app follows no experiment"

    @contextlib.contextmanager
    def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
        old = obj.__dict__.get(name) if not isinstance(obj, type) else getattr(obj, name)
        setattr(obj, name, value)
        try:
            yield
        finally:
            if old is None and not isinstance(obj, type):
                delattr(obj, name)  # back to the class's method
            else:
                setattr(obj, name, old)

    one_version = dataclasses.replace(arms, candidates=(arms.control,))
    # A second scorer on control's own session: two calls a turn, as is, on one model's memory.
    one_model = dataclasses.replace(arms, candidates=(copy.copy(arms.control),))
    return {
        "as is": contextlib.nullcontext,
        "not handed": lambda: patched(recorder.ledger, "put_group", lambda group: None),
        "no ledger rows": lambda: patched(
            Recorder, "record", lambda self, routes, *args, **kw: self._count_arms(routes)
        ),
        "one version": lambda: patched(serving, "_arms", lambda: one_version),
        "one model, two calls": lambda: patched(serving, "_arms", lambda: one_model),
    }


async def _timed(app: Any, keyed: bool, keys: Iterator[str], per_turn: int = 16) -> float:
    """CPU µs per request over about REQUESTS requests, ``per_turn`` at a time."""
    statuses: list[int] = []
    turns = REQUESTS // per_turn
    t0 = time.process_time()
    for _ in range(turns):
        batch = (_request(app, "/predict", statuses, next(keys) if keyed else None) for _ in range(per_turn))
        await asyncio.gather(*batch)
    if set(statuses) != {200}:
        raise RuntimeError(f"answered {sorted(set(statuses))}")
    return 1e6 * (time.process_time() - t0) / (turns * per_turn)


def parts(rounds: int, per_turn: int = 16) -> dict[str, Any]:
    from litestar.testing import TestClient

    from ml_matching.runtime.app import create_app
    from ml_matching.runtime.settings import Settings

    keys = (f"brand-{i}" for i in itertools.count())
    with experiments.following(CONFIG, 5000) as (root, settings):
        env = {"MODELS_DIR": str(root), "LOG_LEVEL": "WARNING", "MODEL_WATCH_SECONDS": "3600", **settings}
        app = create_app(Settings.from_environ(env))
        with TestClient(app) as client:
            experiments.check_loaded(client.get("/health").json(), CONFIG)
            portal = client.blocking_portal
            portal.call(_timed, app, True, keys, per_turn)  # warm-up: caches, the drift window
            gc.collect()
            gc.freeze()  # as `ml-matching serve` does after its start-up
            switches = _switches(app)
            names = [*switches, "no key"]
            runs: dict[str, list[float]] = {name: [] for name in names}
            elsewhere = _LedgerCpu(app)
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    with switches.get(name, contextlib.nullcontext)():
                        runs[name].append(portal.call(_timed, app, name != "no key", keys, per_turn))
            ledger = client.get("/health").json().get("ledger")
            ledger_process_us_per_row = elsewhere.per_row()
    base = runs["as is"]
    return {
        "us_per_request": {name: statistics.median(v) for name, v in runs.items()},
        "minus_as_is_us": {
            name: statistics.median(a - b for a, b in zip(v, base, strict=True)) for name, v in runs.items()
        },
        "runs_us": runs,
        "ledger": ledger,
        "ledger_process_us_per_row": ledger_process_us_per_row,
    }


class _LedgerCpu:
    """The ledger process's CPU from now on, per row it sent: the work moved out of the serving
    process, not gone (it runs on another core)."""

    def __init__(self, app: Any) -> None:
        self.ledger = app.state.serving.recorder.ledger
        self.pid = self.ledger._process.pid
        self.cpu, self.sent = procs.cpu_seconds(self.pid), self.ledger.counts.sent

    def per_row(self) -> float:
        assert self.ledger.wait_sent(120), self.ledger.counts
        rows = self.ledger.counts.sent - self.sent
        return 1e6 * (procs.cpu_seconds(self.pid) - self.cpu) / max(rows, 1)


def _serve_counting() -> int:
    """``ml-matching serve``, its coalescer counting each turn's rows and versions (written to
    $EXPERIMENT_PARTS_OUT on SIGTERM)."""
    from ml_matching.cli import main
    from ml_matching.runtime.coalesce import RowCoalescer

    rows: collections.Counter[int] = collections.Counter()
    calls: collections.Counter[int] = collections.Counter()
    flush = RowCoalescer._flush

    def counted(self: RowCoalescer[Any]) -> None:
        rows[len(self._pending)] += 1
        calls[len({(id(item[0]), item[4]) for item in self._pending})] += 1
        flush(self)

    RowCoalescer._flush = counted  # type: ignore[method-assign]

    def dump(*_: object) -> None:
        Path(os.environ["EXPERIMENT_PARTS_OUT"]).write_text(json.dumps({"rows": rows, "calls": calls}))
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)
    return main(["serve"])


def turns(seconds: int) -> dict[str, Any]:
    out = experiments.WORK / "turns.json"
    out.unlink(missing_ok=True)
    with experiments.following(CONFIG, 5000) as (root, settings):
        port = procs.free_port()
        env = {
            **os.environ, "MODELS_DIR": str(root), "ML_SERVICE_PORT": str(port),
            "ML_SERVICE_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING", "MODEL_WATCH_SECONDS": "3600",
            "EXPERIMENT_PARTS_OUT": str(out), **settings,
        }  # fmt: skip
        cmd = [sys.executable, __file__, "--serve-counting"]
        server = procs.Server("runtime", cmd, env, port, experiments.WORK / "logs" / "parts.log")
        procs.start(server, experiments.ROOT)
        try:
            script, _ = experiments.keyed_scripts()
            run = loadgen.run(server.url + "/predict", script, threads=2, connections=16, seconds=seconds)
        finally:
            procs.stop(server)
    counts = json.loads(out.read_text())
    rows = {int(k): v for k, v in counts["rows"].items()}
    calls = {int(k): v for k, v in counts["calls"].items()}
    turns_ = sum(rows.values())
    return {
        "rps": run["rps"],
        "turns": turns_,
        "mean_rows_per_turn": sum(k * v for k, v in rows.items()) / turns_,
        "share_of_turns_with_two_versions": calls.get(2, 0) / turns_,
        "rows_per_turn": dict(sorted(rows.items())),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--per-turn", type=int, default=16, help="keyed requests handled together in-process")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--serve-counting", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_counting:
        return _serve_counting()
    if loadgen.wrk_path() is None:
        print(loadgen.INSTALL_HINT, file=sys.stderr)
        return 1
    experiments.WORK.mkdir(parents=True, exist_ok=True)
    experiments.store(5000)  # built once, before any timing
    result = {"command": " ".join(["python", "bench/experiment_parts.py", *sys.argv[1:]]),
              "parts": parts(args.rounds, args.per_turn), "under_wrk": turns(args.seconds)}  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    at_once = f"{args.per_turn} at a time"
    print(f"CPU µs per keyed POST /predict in-process, {at_once}, median of {args.rounds} rounds")
    print("| variant | µs/request | − as is (paired) |\n| --- | ---: | ---: |")
    for name, us in result["parts"]["us_per_request"].items():
        print(f"| {name} | {us:.1f} | {result['parts']['minus_as_is_us'][name]:+.1f} |")
    print(f"the ledger process: {result['parts']['ledger_process_us_per_row']:.1f} µs of CPU per row it sent")
    w = result["under_wrk"]
    print(f"under wrk: {w['rps']:.0f} req/s, {w['mean_rows_per_turn']:.1f} rows a turn, "
          f"{100 * w['share_of_turns_with_two_versions']:.0f} % of turns with both versions")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
