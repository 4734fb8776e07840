"""Refit the RandomForest a runtime version was exported from, and save it with joblib for the seed baseline.

The seed's design serves a pickled scikit-learn model. To compare like with like, the baseline must
serve *the same* forest as the runtime's ONNX file: this refits it from the same data file, with the
sidecar's hyperparameters (``n_jobs=-1`` included), the same stratified hold-out split and seed, and
then checks the refit against the sidecar's golden rows before writing anything.

Bench-only: imports training's dependencies (scikit-learn, joblib); the runtime never imports this.

``python bench/seed_model.py DATA VERSION_DIR OUT.joblib``
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

from ml_matching.contract import FeatureSet, decode_sidecar
from ml_matching.training.data import load_dataset

# The refit runs the same code on the same data, so it should agree to the last bit; allow rounding.
GOLDEN_TOLERANCE = 1e-12


def fit_seed_forest(data: Path, version_dir: Path, out: Path) -> dict[str, object]:
    """Fit, check and ``joblib.dump`` the forest of ``version_dir``; write ``out``'s metadata beside it.

    Returns
    -------
    dict
        What was written: path, version, feature order, the largest golden-row difference.

    Raises
    ------
    ValueError
        The data is not the version's training data, the version is not a RandomForest, or the refit
        disagrees with the golden rows.
    """
    sidecar = decode_sidecar((version_dir / "model.json").read_bytes())
    if sidecar.algorithm != "random_forest":
        raise ValueError(f"{version_dir.name} is a {sidecar.algorithm}, expected a random_forest version")
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    if digest != sidecar.training_data.sha256:
        raise ValueError(f"{data} (sha256 {digest[:12]}…) is not the data {sidecar.version} was trained on")
    fs = FeatureSet(sidecar.features)
    ds = load_dataset(data, fs)
    x_train, _, y_train, _ = train_test_split(
        ds.x,
        ds.y,
        test_size=sidecar.metrics.holdout_fraction,
        stratify=ds.y,
        random_state=sidecar.random_seed,
    )
    forest = RandomForestClassifier(**sidecar.hyperparameters).fit(x_train, y_train)
    worst = _golden_gap(forest, sidecar)
    if not worst <= GOLDEN_TOLERANCE:
        raise ValueError(f"refit differs from {sidecar.version}'s golden rows by {worst:.3g}")
    out.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(forest, out)
    meta = {
        "path": str(out),
        "version": sidecar.version,
        "features": list(fs.names),
        "nJobs": forest.n_jobs,
        "goldenMaxAbsDiff": worst,
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    return meta


def _golden_gap(forest: RandomForestClassifier, sidecar: object) -> float:
    rows = sidecar.golden_rows  # type: ignore[attr-defined]
    names = [f.name for f in sidecar.features]  # type: ignore[attr-defined]
    x = np.array([[r.features[n] for n in names] for r in rows], dtype=np.float32).astype(np.float64)
    got = forest.predict_proba(x)[:, 1]
    return float(np.max(np.abs(got - np.array([r.probability for r in rows]))))


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    meta = fit_seed_forest(Path(argv[0]), Path(argv[1]), Path(argv[2]))
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
