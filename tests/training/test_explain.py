"""Per-prediction explanations: explain.onnx adds up to the model's output and credits the right feature."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

from ml_matching.contract import default_feature_set
from ml_matching.training import calibration as cal
from ml_matching.training import explain as xp
from ml_matching.training.errors import ParityError
from ml_matching.training.export import export_onnx, onnx_session
from ml_matching.training.synth import _SIGNAL, synthesize

NAMES = list(default_feature_set().names)
BRAND_FIT = NAMES.index("brandFit")
NO_SIGNAL = [NAMES.index(n) for n in NAMES if n not in _SIGNAL]
MODES = [(a, m) for a in ("random_forest", "gradient_boosting") for m in ("none", "sigmoid")]


def _make(algorithm: str) -> Any:
    if algorithm == "random_forest":
        return RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0, n_jobs=1)
    return GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=0)


@pytest.fixture(scope="module")
def synthetic() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    body = synthesize(3000, default_feature_set(), seed=7)
    x = np.array([[r[n] for n in NAMES] for r in body["features"]])
    return x, np.array(body["outcomes"], dtype=np.int64)


class Explained:
    """A fitted (and maybe calibrated) model with its exported model.onnx and explain.onnx."""

    def __init__(self, algorithm: str, method: str, x: Any, y: Any) -> None:
        self.model = cal.calibrated(_make(algorithm), method, 3, 0).fit(x, y)
        exported = export_onnx(self.model, len(NAMES))
        self.session = onnx_session(exported.data)
        self.explainer = xp.explainer(self.model)
        self.graph = xp.explain_graph(exported.data, self.explainer, exported.ml_opset)

    def contributions(self, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return xp.run(self.graph, rows).astype(np.float64)

    def served(self, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """What the runtime serves for ``rows``: model.onnx's positive-class probability."""
        return np.asarray(self.session.run(["probabilities"], {"input": rows})[0][:, 1], dtype=np.float64)


@pytest.fixture(scope="module", params=MODES, ids=[f"{a}-{m}" for a, m in MODES])
def explained(request: pytest.FixtureRequest, synthetic: Any) -> Explained:
    return Explained(*request.param, *synthetic)


def _random_rows(n: int, seed: int) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).uniform(size=(n, len(NAMES))).astype(np.float32)


def _probability(scale: str, value: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return value if scale == "probability" else 1.0 / (1.0 + np.exp(-value))


def test_base_plus_contributions_is_the_served_output(explained: Explained) -> None:
    rows = _random_rows(1000, seed=11)
    c = explained.contributions(rows)
    total = explained.explainer.base_value + c.sum(axis=1)
    # In the stated scale, against scikit-learn, and mapped to a probability against model.onnx.
    assert np.abs(total - xp.explained_output(explained.model, rows)).max() <= 1e-5
    served = explained.served(rows)
    assert np.abs(_probability(explained.explainer.scale, total) - served).max() <= 1e-5
    # The graph equals the direct computation from the fitted trees.
    assert np.abs(c - explained.explainer.contributions(rows)).max() <= 1e-5


def test_scale_is_stated(explained: Explained) -> None:
    forest_uncalibrated = isinstance(explained.model, RandomForestClassifier)
    assert explained.explainer.scale == ("probability" if forest_uncalibrated else "log-odds")


def test_brand_fit_across_its_threshold_moves_brand_fit_most(explained: Explained) -> None:
    # Random rows that differ only in brandFit, one on each side of the ground truth's 0.4 threshold.
    below, above = _random_rows(200, seed=12), _random_rows(200, seed=12)
    below[:, BRAND_FIT], above[:, BRAND_FIT] = 0.3, 0.5
    lo, hi = explained.contributions(below), explained.contributions(above)
    assert (lo[:, BRAND_FIT] < 0).all() and (hi[:, BRAND_FIT] > 0).all()
    moved = np.abs(hi - lo)
    assert (moved.argmax(axis=1) == BRAND_FIT).mean() >= 0.95
    assert moved[:, BRAND_FIT].mean() > 5 * np.delete(moved, BRAND_FIT, axis=1).mean(axis=0).max()


def test_features_without_signal_average_near_zero(explained: Explained) -> None:
    c = explained.contributions(_random_rows(1000, seed=13))
    typical = np.abs(c[:, BRAND_FIT]).mean()
    assert np.abs(c[:, NO_SIGNAL].mean(axis=0)).max() < 0.05 * typical


def test_a_graph_off_the_trees_is_refused(synthetic: Any) -> None:
    e = Explained("random_forest", "none", *synthetic)
    rows = _random_rows(50, seed=14)
    parity = xp.check_explainer(e.graph, e.explainer, e.model, rows, 1e-5)
    assert parity.rows == 50 and parity.max_abs_diff <= 1e-5 and parity.sum_max_abs_diff <= 1e-5
    shifted = xp.Explainer(e.explainer.trees, e.explainer.base_value + 1e-3, e.explainer.scale, len(NAMES))
    with pytest.raises(ParityError, match="do not add up on row"):
        xp.check_explainer(e.graph, shifted, e.model, rows, 1e-5)
    other = Explained("random_forest", "sigmoid", *synthetic)
    with pytest.raises(ParityError, match=r"explain\.onnx differs from the trees on row \d+, feature \d+"):
        xp.check_explainer(e.graph, other.explainer, other.model, rows, 1e-5)


def test_the_graph_has_one_output_per_feature(explained: Explained) -> None:
    session = onnx_session(explained.graph)
    (out,) = session.get_outputs()
    assert out.name == xp.OUTPUT and out.shape == [None, len(NAMES)]
