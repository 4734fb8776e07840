"""The issue's targets, checked against one run's results, and the Markdown tables printed after a run."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

Result = dict[str, Any]

# (label, unit, comparison, goal, how to read the figure from the results)
TARGETS: list[tuple[str, str, str, float, Callable[[Result], float | None]]] = [
    ("/predict req/s @16 conn ÷ seed design", "×", ">=", 100, lambda r: _ratio(r, "rps_c16", "seed")),
    ("/predict req/s @16 conn ÷ framework ceiling", "×", ">=", 0.95,
     lambda r: _ratio(r, "rps_c16", "ceiling")),
    ("server CPU per /predict @16 conn ÷ ceiling", "×", "<=", 1.10,
     lambda r: _ratio(r, "cpu_ms_per_req_c16", "ceiling")),
    ("/predict p50 @1 conn ÷ ceiling p50", "×", "<=", 1.2, lambda r: _ratio(r, "p50_c1_ms", "ceiling")),
    ("runtime RSS after warm-up ÷ ceiling's (RandomForest loaded)", "×", "<=", 1.0,
     lambda r: _ratio(r, "rss_mb_after_warmup", "ceiling")),
    # The constant ceiling imports no onnxruntime and walks no forest: the same two goals against the
    # ceiling that scores the same model.onnx and does nothing else (baselines/scoring_ceiling_service.py).
    ("/predict p50 @1 conn ÷ scoring ceiling p50", "×", "<=", 1.2,
     lambda r: _ratio(r, "p50_c1_ms", "scoring-ceiling")),
    ("runtime RSS after warm-up ÷ scoring ceiling's", "×", "<=", 1.0,
     lambda r: _ratio(r, "rss_mb_after_warmup", "scoring-ceiling")),
    ("runtime start → first 200 on /health/ready", "s", "<=", 0.5, lambda r: _srv(r, "ready_s_median")),
    ("in-process 1 row: sklearn n_jobs=-1 ÷ runtime", "×", ">=", 500,
     lambda r: _get(r, "inprocess", "speedup_1_vs_njobs-1")),
    ("Node in-process 1 row (median)", "µs", "<=", 25, lambda r: _get(r, "node", "node_one_row_us_median")),
    ("batch rows/s @1,000 rows/request", "rows/s", ">=", 100_000, lambda r: _batch(r, "1000")),
    ("fit --model all, 5,000 rows (wall)", "s", "<=", 30, lambda r: _fit(r, "5000")),
]  # fmt: skip
_OPS = {">=": operator.ge, "<=": operator.le}


def targets(results: Result) -> list[dict[str, Any]]:
    out = []
    for label, unit, op, goal, read in TARGETS:
        try:
            value = read(results)
        except (KeyError, TypeError, ZeroDivisionError):
            value = None
        holds = None if value is None else bool(_OPS[op](value, goal))
        out.append({"target": label, "unit": unit, "op": op, "goal": goal, "value": value, "holds": holds})
    return out


def _get(r: Result, section: str, key: str) -> float | None:
    value = r.get(section, {}).get(key)
    return None if value is None else float(value)


def _srv(r: Result, key: str, server: str = "runtime") -> float:
    return float(r["http"]["servers"][server][key])


def _ratio(r: Result, key: str, other: str) -> float:
    return _srv(r, key) / _srv(r, key, other)


def _batch(r: Result, rows: str) -> float:
    return float(r["batch"]["sizes"][rows]["rows_per_s"])


def _fit(r: Result, rows: str) -> float:
    return float(r["training"]["by_rows"][rows]["wall_s_median"])


def markdown(r: Result) -> str:
    meta = r["meta"]
    m = meta["machine"]
    kind = "QUICK run (short, for development; not for quoting)" if meta["quick"] else "full run"
    lines = [
        f"### ml-matching benchmarks — {kind}",
        "",
        f"{meta['date']} · {m['cpu_model']} · {m['nproc']} cores · load avg {m['loadavg_start']} → "
        f"{m['loadavg_end']} · Python {meta['python']} · commit {meta['git']['commit'][:10]}"
        f"{' (dirty)' if meta['git']['dirty'] else ''}",
        "",
        "#### Targets (ratios from the same run)",
        "",
        "| target | measured | goal | holds |",
        "| --- | ---: | ---: | :---: |",
    ]
    for t in r["targets"]:
        holds = {True: "yes", False: "**no**", None: "n/a"}[t["holds"]]
        lines.append(
            f"| {t['target']} | {_num(t['value'])} {t['unit']} | {t['op']} {_num(t['goal'])} | {holds} |"
        )
    lines += _http(r) + _inprocess(r) + _node(r) + _batch_table(r) + _training(r)
    return "\n".join(lines) + "\n"


def _skipped(section: Any) -> str | None:
    if not isinstance(section, dict):
        return "not run"
    if "skipped" in section:
        return f"skipped: {section['skipped']}"
    if "error" in section:
        return f"error: {section['error']}"
    return None


def _http(r: Result) -> list[str]:
    h = r.get("http")
    out = ["", "#### HTTP POST /predict (uvicorn, 1 worker, no access log; wrk)", ""]
    if why := _skipped(h):
        return [*out, why]
    s = h["settings"]
    out += [
        f"{s.get('uvicorn', 'uvicorn')}; {s['seconds']} s per run, median of {s['reps']} round-robin "
        "repetitions; @1 = `wrk -t1 -c1`, @16 = `wrk -t2 -c16`. The runtime and the ceilings run from "
        f"{s.get('runtime_env', 'the benchmark environment')}; the seed from the benchmark environment.",
        "",
        "| server | p50 @1 (ms) | p99 @1 (ms) | req/s @16 | p99 @16 (ms) | CPU ms/req @16 | RSS MB "
        "| ready (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, v in h["servers"].items():
        flag = "" if v.get("all_ok", True) else " ⚠ errors"
        out.append(
            f"| {name}{flag} | {v['p50_c1_ms']:.3f} | {v['p99_c1_ms']:.3f} | {v['rps_c16']:,.0f} | "
            f"{v['p99_c16_ms']:.2f} | {v['cpu_ms_per_req_c16']:.3f} | {v['rss_mb_after_warmup']:.1f} | "
            f"{v['ready_s_median']:.2f} |"
        )
    return out


def _inprocess(r: Result) -> list[str]:
    p = r.get("inprocess")
    out = ["", "#### In-process scoring (median of repetitions)", ""]
    if why := _skipped(p):
        return [*out, why]
    rows: list[tuple[str, str, str | None]] = [
        ("runtime Scorer (JSON bytes → JSON bytes)", "runtime_predict_1", "runtime_predict_batch_10000"),
        ("onnxruntime session only (float32 matrix)", "onnx_only_1", "onnx_only_10000"),
        ("runtime Scorer, 1,000 distinct rows in turn", "runtime_predict_1_pool", None),
        ("onnxruntime only, 1,000 distinct rows in turn", "onnx_only_1_pool", None),
        ("scikit-learn predict_proba, n_jobs=-1", "sklearn_njobs-1_1", "sklearn_njobs-1_10000"),
        ("scikit-learn predict_proba, n_jobs=1", "sklearn_njobs1_1", "sklearn_njobs1_10000"),
    ]
    out += ["| path | 1 row (µs) | 10,000 rows (ms) |", "| --- | ---: | ---: |"]
    for label, one, many in rows:
        if one not in p:  # a figure added after that run
            continue
        many_ms = f"{p[many]['median_us'] / 1e3:,.2f}" if many else "—"
        out.append(f"| {label} | {p[one]['median_us']:,.1f} | {many_ms} |")
    out.append("")
    out.append(
        f"Speed-up of the runtime over scikit-learn: 1 row ×{p['speedup_1_vs_njobs-1']:,.0f} (n_jobs=-1), "
        f"×{p['speedup_1_vs_njobs1']:,.0f} (n_jobs=1); 10,000 rows ×{p['speedup_10000_vs_njobs-1']:.1f} "
        f"(n_jobs=-1), ×{p['speedup_10000_vs_njobs1']:.1f} (n_jobs=1)."
    )
    return out


def _node(r: Result) -> list[str]:
    n = r.get("node")
    out = ["", "#### Node in-process (clients/node)", ""]
    if why := _skipped(n):
        return [*out, why]
    return [
        *out,
        "| 1 row median (µs) | 1 row p99 (µs) | 1,000 rows median (ms) | weighted fallback 1 row (µs) |",
        "| ---: | ---: | ---: | ---: |",
        f"| {_num(n.get('node_one_row_us_median'))} | {_num(n.get('node_one_row_us_p99'))} | "
        f"{_num(n.get('node_1000_rows_ms_median'))} | {_num(n.get('weighted_one_row_us_median'))} |",
    ]


def _batch_table(r: Result) -> list[str]:
    b = r.get("batch")
    out = ["", "#### POST /predict/batch (runtime)", ""]
    if why := _skipped(b):
        return [*out, why]
    s = b["settings"]
    out += [
        f"`wrk -t{s['threads']} -c{s['connections']}`, {s['seconds']} s per run, median of {s['reps']}.",
        "",
        "| rows/request | req/s | rows/s | p50 (ms) | p99 (ms) | CPU µs/row |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rows, v in b["sizes"].items():
        out.append(
            f"| {int(rows):,} | {v['rps']:,.0f} | {v['rows_per_s']:,.0f} | {v['p50_ms']:.2f} | "
            f"{v['p99_ms']:.2f} | {v['cpu_us_per_row']:.2f} |"
        )
    return out


def _training(r: Result) -> list[str]:
    t = r.get("training")
    out = ["", "#### Training: `ml-matching fit --model all` (5-fold CV, export, parity)", ""]
    if why := _skipped(t):
        return [*out, why]
    out += [
        "| rows | wall (s) | CPU (s) | peak RSS, fit process (MB) | peak RSS, with workers (MB) | runs |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rows, v in t["by_rows"].items():
        out.append(
            f"| {int(rows):,} | {v['wall_s_median']:.1f} | {v['cpu_s_median']:.1f} | {v['max_rss_mb']:.0f} | "
            f"{v['tree_peak_rss_mb']:.0f} | {v['runs']} |"
        )
    return out


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"
