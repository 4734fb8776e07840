"""What cross-validating on a sample changes: the folds' ROC-AUC and the calibration, at 100k rows.

    python bench/cv_sample.py            # writes bench/results-cv-sample.json (about 5 minutes on 2 cores)

On the 100,000-row synthetic set (``synth``, seed 42, the one ``bench/fit_scale.py`` makes), split
as ``fit`` splits it (80,000 training rows, 20,000 held out), each algorithm is cross-validated on
all training rows and on stratified samples of 20,000 (the default ``cv_rows``) and 10,000. For
each, it records the folds' mean ROC-AUC, what ``auto`` chose, and the held-out calibration error
of the model fitted on all training rows with a sigmoid calibrator fitted on that CV's out-of-fold
predictions. The held-out figures of the uncalibrated model are the same in every row: only the
folds change.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import fitcost
import numpy as np
from joblib import Parallel, delayed
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from ml_matching.contract import default_feature_set
from ml_matching.training import calibration as cal
from ml_matching.training import estimators as est
from ml_matching.training import steps
from ml_matching.training.config import TrainConfig
from ml_matching.training.data import load_dataset

HERE = Path(__file__).resolve().parent
OUT = HERE / "results-cv-sample.json"
SAMPLES = (10_000, 20_000, 0)  # 0: every training row
ALGORITHMS = ("gradient_boosting", "random_forest")


def _one_core(algorithm: str, config: TrainConfig) -> Any:
    model = est.make_estimator(algorithm, config)
    return model.set_params(n_jobs=1) if algorithm == "random_forest" else model


def _fold(algorithm: str, config: TrainConfig, x: Any, y: Any, train: Any, test: Any) -> tuple[Any, Any]:
    model = _one_core(algorithm, config).fit(x[train], y[train])
    return test, model.predict_proba(x[test])[:, 1]


def _final(algorithm: str, config: TrainConfig, x: Any, y: Any) -> Any:
    return _one_core(algorithm, config).fit(x, y)


def main() -> None:
    fs = default_feature_set()
    data = load_dataset(fitcost.synth(100_000, HERE / ".work" / "fit-scale", HERE.parent), fs)
    base = TrainConfig()
    s = steps.split(data, base)
    finals = dict(
        zip(
            ALGORITHMS,
            Parallel(n_jobs=2)(delayed(_final)(a, base, s.x_train, s.y_train) for a in ALGORITHMS),
            strict=True,
        )
    )
    out: dict[str, Any] = {"command": "python bench/cv_sample.py", "rows": data.rows, "runs": []}
    for algorithm in ALGORITHMS:
        for rows in SAMPLES:
            xs, ys = steps.sample(s.x_train, s.y_train, rows, base.seed)
            t0 = time.perf_counter()
            folds = StratifiedKFold(base.folds, shuffle=True, random_state=base.seed).split(xs, ys)
            results = Parallel(n_jobs=2)(delayed(_fold)(algorithm, base, xs, ys, tr, te) for tr, te in folds)
            oof = np.empty(len(ys))
            aucs = []
            for test, p in results:
                oof[test] = p
                aucs.append(roc_auc_score(ys[test], p))
            choice = cal.choose("auto", cal.cv_brier(algorithm, ys, oof, base.folds, base.seed))
            response = cal.score_input(algorithm, oof)
            model = cal.calibrate(
                est.make_estimator(algorithm, base),
                finals[algorithm],
                "sigmoid",
                response,
                ys,
                base.folds,
                base.seed,
            )
            before = finals[algorithm].predict_proba(s.x_hold)[:, 1]
            after = model.predict_proba(s.x_hold)[:, 1]
            run = {
                "algorithm": algorithm,
                "cv_rows": len(ys),
                "cv_roc_auc": float(np.mean(aucs)),
                "cv_roc_auc_std": float(np.std(aucs)),
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
