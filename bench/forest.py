"""The forest walk alone, at 1 and 64 rows: onnxruntime's tree ensemble and its options, against the
same forest compiled to native code by treelite + tl2cgen.

    python bench/run.py --only inprocess   # makes the store and the refitted forest it reads
    pip install treelite tl2cgen           # for the compiled forest (needs gcc); skipped otherwise
    python bench/forest.py                 # writes bench/results-forest.json

Every variant scores the same rows of the same forest: the runtime's verified ``model.onnx`` of the
served version, and for treelite the scikit-learn forest ``bench/seed_model.py`` refitted and
checked against the version's golden rows. One-row calls cycle through 1,000 distinct rows (one
repeated row stays in the CPU cache, which a server between requests does not); 64-row calls
through 16 distinct blocks. A variant counts only if its probabilities match onnxruntime's to 1e-5.
Not a test: it prints a table.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from inprocess import POOL, _cycle, timed

from ml_matching.contract import load_version, sessions

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
OUT = HERE / "results-forest.json"
PARITY = 1e-5
CALLS = {1: 20_000, 64: 2_000}


def _rows(n_features: int) -> np.ndarray:
    return np.random.default_rng(7).random((POOL, n_features), dtype=np.float32)


def _onnx_variants(graph: bytes) -> dict[str, Any]:
    """onnxruntime sessions of the version's graph: the runtime's, and the options worth trying."""
    import onnxruntime as ort

    def session(threads: int = 1, level: Any = None) -> Any:
        opts = sessions.session_options(threads)
        if level is not None:
            opts.graph_optimization_level = level
        return ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])

    return {
        "onnxruntime (the runtime's session)": session(),
        "onnxruntime, graph optimisations off": session(level=ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
        "onnxruntime, 2 intra-op threads": session(threads=2),
    }


def _probability(sess: Any, model: Any) -> Any:
    onnx = model.sidecar.onnx

    def predict(x: np.ndarray) -> np.ndarray:
        return sess.run([onnx.probabilities_output], {onnx.input_name: x})[0][:, onnx.positive_class_index]

    return predict


def _compiled(forest_path: Path, tmp: Path) -> dict[str, Any] | str:
    """The forest compiled by tl2cgen (plain, and with thresholds quantised), as functions of a
    float32 matrix that pay for the DMatrix a caller must build; or why they were skipped."""
    try:
        import joblib
        import tl2cgen
        import treelite
    except ImportError as exc:
        return f"compiled forest skipped: {exc.name} is not installed (pip install treelite tl2cgen)"
    forest = joblib.load(forest_path)  # bench's own refit (bench/seed_model.py), never the runtime's
    model = treelite.sklearn.import_model(forest)
    version = f"treelite {treelite.__version__}, tl2cgen {tl2cgen.__version__}"
    out = {}
    for label, params in (("compiled", {}), ("compiled, quantised", {"quantize": 1})):
        lib = tmp / f"{len(out)}.so"
        tl2cgen.export_lib(model, toolchain="gcc", libpath=str(lib), params={"parallel_comp": 8, **params})
        out[f"{label} ({version})"] = _tl2cgen_predict(tl2cgen, tl2cgen.Predictor(str(lib), nthread=1))
    return out


def _tl2cgen_predict(tl2cgen: Any, predictor: Any) -> Any:
    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(predictor.predict(tl2cgen.DMatrix(x, dtype="float32")))[..., -1].reshape(len(x))

    return predict


def main() -> int:
    store = WORK / "stores" / "serve"
    forest = WORK / "seed" / "forest.joblib"
    meta = json.loads(forest.with_suffix(".json").read_text()) if forest.with_suffix(".json").exists() else {}
    version = meta.get("version") or (store / "ACTIVE").read_text().strip()
    model = load_version(store, version)  # verified; its graph is then read as the runtime reads it
    graph = (store / version / "model.onnx").read_bytes()
    x = _rows(len(model.feature_set.names))
    blocks = [x[i : i + 64] for i in range(0, 1024 - 64, 64)]
    variants = {k: _probability(s, model) for k, s in _onnx_variants(graph).items()}
    with tempfile.TemporaryDirectory() as tmp:
        compiled = _compiled(forest, Path(tmp)) if forest.exists() else "skipped: no refitted forest"
        notes = {}
        if isinstance(compiled, dict):
            variants |= compiled
        else:
            notes["compiled"] = compiled
        results = _measure(variants, x, blocks)
    reference = results[next(iter(results))]
    for r in results.values():
        if "refused" in r:
            continue
        r["x_1_row"] = reference["us_1"] / r["us_1"]
        r["x_64_rows"] = reference["us_64"] / r["us_64"]
    _print(results, notes)
    OUT.write_text(json.dumps({"version": version, "results": results, "notes": notes}, indent=2) + "\n")
    return 0


def _measure(variants: dict[str, Any], x: np.ndarray, blocks: list[np.ndarray]) -> dict[str, Any]:
    first = next(iter(variants.values()))
    truth = first(x)
    results = {}
    for label, predict in variants.items():
        gap = float(np.max(np.abs(predict(x) - truth)))
        if gap > PARITY:
            results[label] = {"refused": f"differs from onnxruntime by {gap:.2e} (> {PARITY})"}
            continue
        one = timed(_cycle(predict, [x[i : i + 1] for i in range(POOL)]), CALLS[1], 5, 10.0)
        many = timed(_cycle(predict, blocks), CALLS[64], 5, 10.0)
        results[label] = {"us_1": one["median_us"], "us_64": many["median_us"], "parity_gap": gap}
    return results


def _print(results: dict[str, Any], notes: dict[str, str]) -> None:
    print("| variant | 1 row (µs) | × runtime | 64 rows (µs) | × runtime | max gap |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, r in results.items():
        if "refused" in r:
            print(f"| {label} | refused: {r['refused']} | | | | |")
            continue
        print(
            f"| {label} | {r['us_1']:.1f} | {r['x_1_row']:.2f} | {r['us_64']:.1f} | {r['x_64_rows']:.2f} "
            f"| {r['parity_gap']:.1e} |"
        )
    for why in notes.values():
        print(why)


if __name__ == "__main__":
    sys.exit(main())
