"""What cross-validating on a sample changes: the folds' ROC-AUC and the calibration, at 100k rows.

    python bench/cv_sample.py            # writes bench/results-cv-sample.json (about 5 minutes on 2 cores)

On the 100,000-row synthetic set (``synth``, seed 42, the one ``bench/fit_scale.py`` makes), split
as ``fit`` splits it (80,000 training rows, 20,000 held out), each algorithm is cross-validated on
all training rows and on stratified samples of 20,000 (the default ``cv_rows``) and 10,000. For
each, it records the folds' mean ROC-AUC, what ``auto`` chose, and the held-out calibration error
of the model fitted on all training rows with a sigmoid calibrator fitted on that CV's out-of-fold
decision function (what ``fit`` fits it on). The held-out figures of the uncalibrated model are
the same in every row: only the folds change.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import fitcost
from sklearn.metrics import roc_auc_score

from ml_matching.contract import default_feature_set
from ml_matching.training import calibration as cal
from ml_matching.training import estimators as est
from ml_matching.training import steps
from ml_matching.training.config import TrainConfig
from ml_matching.training.data import load_dataset
from ml_matching.training.evaluate import cross_validate, fit_final
from ml_matching.training.rows import stratified_sample

HERE = Path(__file__).resolve().parent
OUT = HERE / "results-cv-sample.json"
SAMPLES = (10_000, 20_000, 0)  # 0: every training row
ALGORITHMS = ("gradient_boosting", "random_forest")


def _one_core(algorithm: str, config: TrainConfig) -> Any:
    model = est.make_estimator(algorithm, config)
    return model.set_params(n_jobs=1) if algorithm == "random_forest" else model


def main() -> None:
    fs = default_feature_set()
    data = load_dataset(fitcost.synth(100_000, HERE / ".work" / "fit-scale", HERE.parent), fs)
    base = TrainConfig()
    s = steps.split(data, base)
    out: dict[str, Any] = {"command": "python bench/cv_sample.py", "rows": data.rows, "runs": []}
    for algorithm in ALGORITHMS:
        model = _one_core(algorithm, base)
        final = fit_final(model, s.x_train, s.y_train)
        for rows in SAMPLES:
            keep = stratified_sample(s.y_train, rows, base.seed)
            xs, ys = s.x_train[keep], s.y_train[keep]
            t0 = time.perf_counter()
            crossed = cross_validate(
                model, xs, ys, folds=base.folds, seed=base.seed, threshold=base.decision_threshold,
                n_jobs=2, label=algorithm, progress=lambda _: None,
            )  # fmt: skip
            choice = cal.choose("auto", cal.cv_brier(algorithm, ys, crossed.oof, base.folds, base.seed))
            sigmoid = cal.calibrate(model, final, "sigmoid", crossed.oof_response, ys, base.folds, base.seed)
            before, after = final.predict_proba(s.x_hold)[:, 1], sigmoid.predict_proba(s.x_hold)[:, 1]
            run = {
                "algorithm": algorithm,
                "cv_rows": len(ys),
                "cv_roc_auc": crossed.cv.mean.roc_auc,
                "cv_roc_auc_std": crossed.cv.std.roc_auc,
                "auto_chose": choice.method,
                "holdout_roc_auc": float(roc_auc_score(s.y_hold, before)),
                "holdout_ece_uncalibrated": cal.figures(s.y_hold, before).ece,
                "holdout_ece_sigmoid": cal.figures(s.y_hold, after).ece,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            out["runs"].append(run)
            print(json.dumps(run), flush=True)
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
