"""Memory per loaded version: RSS of a process that loads 1, 2 and 3 versions of the default forest.

    python bench/memory.py                  # trains three RandomForests (5,000 rows, seeds 1-3) once
    python bench/memory.py --options arena  # one option set; default: every set in SESSION_OPTIONS

Each measurement is a fresh process (``--child``) that imports the runtime, then loads the versions
one after another with ``load_version`` (the runtime's verified load: the model's session; the
explainer stays unloaded, as ``EXPLAIN_LOAD=lazy`` leaves it) and prints its RSS after each, then
scores one row 2,000 times per version to show what an option costs in time. Not a test: it prints
a table and writes ``bench/results-memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "memory"
OUT = HERE / "results-memory.json"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError("no VmRSS")


def store(rows: int) -> tuple[Path, list[str]]:
    """A store of three default RandomForests trained on the same data with seeds 1, 2, 3."""
    root = WORK / f"store-{rows}"
    data = WORK / f"data-{rows}.json"
    if not data.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "ml_matching", "synth", "--rows", str(rows), "--out", str(data)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    versions = sorted(p.name for p in root.glob("2*")) if root.exists() else []
    for seed in range(len(versions) + 1, 4):
        cmd = [sys.executable, "-m", "ml_matching", "fit", "--data", str(data), "--artifacts", str(root),
               "--seed", str(seed), "--no-activate"]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.1)  # versions are named by the second they were trained in
    return root, sorted(p.name for p in root.glob("2*"))[:3]


def _options(name: str) -> Any:
    """``session_options`` with the memory settings of the set ``name`` on top of the runtime's."""
    import onnxruntime as ort

    from ml_matching.contract import sessions

    base = sessions.session_options

    def made(threads: int) -> Any:
        opts = base(threads)
        if name in ("no-arena", "no-arena-no-pattern"):
            opts.enable_cpu_mem_arena = False
        if name in ("no-pattern", "no-arena-no-pattern"):
            opts.enable_mem_pattern = False
        if name == "shared-allocator":
            opts.add_session_config_entry("session.use_env_allocators", "1")
        if name == "no-prepacking":
            opts.add_session_config_entry("session.disable_prepacking", "1")
        return opts

    if name == "shared-allocator":
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
    return made


SESSION_OPTIONS = (
    "default",
    "no-arena",
    "no-pattern",
    "no-arena-no-pattern",
    "shared-allocator",
    "no-prepacking",
)


def child(root: Path, versions: list[str], options: str) -> dict[str, Any]:
    """In a fresh process: RSS after imports and after each load; one-row scoring time per version."""
    import numpy as np

    from ml_matching.contract import load_version, sessions

    sessions.session_options = _options(options)  # type: ignore[assignment]
    out: dict[str, Any] = {"options": options, "imported": rss_mb(), "loaded": []}
    models = []
    for version in versions:
        models.append(load_version(root, version, explain="lazy"))
        out["loaded"].append(rss_mb())
    x = np.full((1, len(models[0].feature_set)), 0.5, dtype=np.float32)
    times = []
    for model in models:
        for _ in range(200):
            model.predict_proba(x)
        started = time.perf_counter()
        for _ in range(2000):
            model.predict_proba(x)
        times.append((time.perf_counter() - started) / 2000 * 1e6)
    out["one_row_us"] = sorted(times)[len(times) // 2]
    out["after_scoring"] = rss_mb()
    # The first explanation builds the explainer's session and verifies it (sha256, golden
    # contributions): what EXPLAIN_LOAD=lazy moves from the load to the first request that asks.
    started = time.perf_counter()
    models[0].contributions(x)
    out["first_explanation_ms"] = (time.perf_counter() - started) * 1e3
    started = time.perf_counter()
    models[0].contributions(x)
    out["next_explanation_ms"] = (time.perf_counter() - started) * 1e3
    out["after_explaining"] = rss_mb()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--options", action="append", help="session option sets to measure")
    p.add_argument("--child", nargs=3, metavar=("STORE", "VERSIONS", "OPTIONS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        root, versions, options = args.child
        print(json.dumps(child(Path(root), versions.split(","), options)))
        return 0
    root, versions = store(args.rows)
    results = []
    for options in args.options or list(SESSION_OPTIONS):
        cmd = [sys.executable, __file__, "--child", str(root), ",".join(versions), options]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ})
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    sizes = [(root / v / "model.onnx").stat().st_size / 1e6 for v in versions]
    OUT.write_text(
        json.dumps({"versions": versions, "model_onnx_mb": sizes, "results": results}, indent=2) + "\n"
    )
    print(f"model.onnx: {', '.join(f'{s:.1f} MB' for s in sizes)} (RandomForest, {args.rows} rows)")
    columns = ("session options", "imported", "1 version", "2 versions", "3 versions", "per further version")
    print("| " + " | ".join((*columns, "1 row (µs)")) + " |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        one, two, three = r["loaded"]
        cells = (r["imported"], one, two, three, (three - one) / 2, r["one_row_us"])
        print(f"| {r['options']} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    first = results[0]
    print(
        f"first explanation ({first['options']}): {first['first_explanation_ms']:.1f} ms, then "
        f"{first['next_explanation_ms']:.2f} ms; "
        f"RSS {first['after_scoring']:.1f} -> {first['after_explaining']:.1f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main())
