"""The rows the promotion gate judges on: the store's evaluation outcomes, never trained on."""

from __future__ import annotations

import numpy as np

from ml_matching.contract import FeatureSet
from ml_matching.trainer.store import OutcomeStore, matching
from ml_matching.training.gate import EvalRows


def evaluation_rows(store: OutcomeStore, fs: FeatureSet, minimum: int) -> EvalRows | None:
    """The store's evaluation outcomes of ``fs``, when there are ``minimum`` of them with both outcomes."""
    fitting, _ = matching(store.rows("evaluation"), fs)
    if len(fitting) < minimum:
        return None
    x = np.array([[o.features[n] for n in fs.names] for o in fitting], dtype=np.float64)
    y = np.array([int(o.outcome) for o in fitting], dtype=np.int64)
    rows = EvalRows(x, y, "evaluation outcomes")
    return rows if rows.usable else None
