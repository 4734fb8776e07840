"""Write the cross-runtime parity fixture the Node client's tests read.

Usage: ``python scripts/node_parity_fixture.py STORE OUTDIR``

For every version in the artifact store STORE, loads it with the Python runtime (which verifies it)
and writes ``OUTDIR/<version>.json``::

    {"version", "onnxruntime", "features": [names in model order], "goldenRows": G,
     "rows": [[x, ...], ...], "probability": [...], "baselineProbability": [...]}

``rows`` are float32-exact: first the G golden rows of the sidecar, then rows at the declared bounds,
then at least 1,000 random rows inside the declared ranges (the observed training range where a
feature declares none). ``probability`` is Python onnxruntime's positive-class probability (float32,
widened to float64); ``baselineProbability`` is the sidecar's logistic baseline in float64,
``1 / (1 + exp(-(intercept + x . coefficients)))``. Node must agree within 1e-6 and 1e-9.
``drift`` is what ``GET /monitoring/drift`` answers once these rows are scored (default window);
Node's ``model.drift()`` must give the same counts and the same PSI within 1e-12.
``contributions`` (versions with an explainer, else null) are Python onnxruntime's explain.onnx
outputs for the rows, with ``baseValue`` and ``explanationScale``; Node must agree within 1e-6.

Only the runtime is imported (no scikit-learn), so this runs where only the base package is installed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import onnxruntime as ort

from ml_matching.contract import LoadedModel, list_versions, load_dir
from ml_matching.runtime.drift import DriftWindow
from ml_matching.runtime.routes import drift_view
from ml_matching.runtime.settings import Settings

RANDOM_ROWS = 1200
EDGE_ROWS = 64
SEED = 20260101


def bounds(model: LoadedModel) -> tuple[np.ndarray, np.ndarray]:
    """Declared [min, max] per feature; the observed training range where none is declared."""
    stats = model.sidecar.training_data.features
    lo = [f.min if f.min is not None else stats[f.name].min for f in model.sidecar.features]
    hi = [f.max if f.max is not None else stats[f.name].max for f in model.sidecar.features]
    return np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)


def float32_in_range(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Round to float32, keeping every value inside [lo, hi] (rounding may cross a bound)."""
    return np.clip(values.astype(np.float32), _round32(lo, up=True), _round32(hi, up=False))


def _round32(v: np.ndarray, up: bool) -> np.ndarray:
    """The float32 nearest to ``v`` on the inside: the smallest >= v (up) or the largest <= v."""
    c = v.astype(np.float32)
    wide = c.astype(np.float64)
    step = np.nextafter(c, np.float32(np.inf if up else -np.inf), dtype=np.float32)
    return np.where(wide < v if up else wide > v, step, c)


def rows_for(model: LoadedModel, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    names = model.feature_set.names
    golden_rows = model.sidecar.golden_rows
    golden = np.array([[row.features[n] for n in names] for row in golden_rows], dtype=np.float32)
    lo, hi = bounds(model)
    n = len(names)
    # Rows mixing exact bounds and interior values: they exercise the extrapolation count.
    pick = rng.integers(0, 3, size=(EDGE_ROWS, n))
    interior = lo + rng.random((EDGE_ROWS, n)) * (hi - lo)
    edges = np.where(pick == 0, lo, np.where(pick == 1, hi, interior))
    random = lo + rng.random((RANDOM_ROWS, n)) * (hi - lo)
    x = np.vstack([golden, float32_in_range(np.vstack([edges, random]), lo, hi)])
    return x, len(golden)


def fixture(model: LoadedModel, rng: np.random.Generator) -> dict[str, Any]:
    x, n_golden = rows_for(model, rng)
    baseline = model.sidecar.baseline
    w = np.array([baseline.coefficients[n] for n in model.feature_set.names], dtype=np.float64)
    logit = baseline.intercept + x.astype(np.float64) @ w
    return {
        "version": model.version,
        "onnxruntime": ort.__version__,
        "features": list(model.feature_set.names),
        "goldenRows": n_golden,
        "rows": x.astype(np.float64).tolist(),
        "probability": model.predict_proba(x).astype(np.float64).tolist(),
        "baselineProbability": (1.0 / (1.0 + np.exp(-logit))).tolist(),
        "drift": drift_after(model, x),
        **explained(model, x),
    }


def explained(model: LoadedModel, x: np.ndarray) -> dict[str, Any]:
    explanation = model.sidecar.explanation
    if explanation is None:
        return {"contributions": None, "baseValue": None, "explanationScale": None}
    return {
        "contributions": model.contributions(x).astype(np.float64).tolist(),
        "baseValue": explanation.base_value,
        "explanationScale": explanation.scale,
    }


def drift_after(model: LoadedModel, x: np.ndarray) -> Any:
    window = DriftWindow(model, Settings().drift_window, Settings().drift_min_rows)
    window.add(x)
    return msgspec.to_builtins(drift_view(window.report()))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python scripts/node_parity_fixture.py STORE OUTDIR", file=sys.stderr)
        return 2
    store, out = Path(argv[0]), Path(argv[1])
    versions = list_versions(store)
    if not versions:
        print(f"no versions in {store}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.json"):
        stale.unlink()
    rng = np.random.default_rng(SEED)
    for version in versions:
        data = fixture(load_dir(store / version), rng)
        (out / f"{version}.json").write_text(json.dumps(data) + "\n", encoding="utf-8")
        print(f"{out / version}.json: {len(data['rows'])} rows ({data['goldenRows']} golden)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
