"""Per-prediction explanations: decision-path attribution, exported as a second ONNX graph.

In one tree a row follows one path from the root to a leaf. Every node has a value: for a leaf,
what the tree outputs there; for an inner node, the average of its leaves' outputs weighted by the
training samples that reached them. Each split on the row's path credits the feature it tests with
the change in value from the node to the child the row went to. The credits telescope, so the
root's value plus the row's credits is the leaf's output. Over the ensemble (a forest averages its
trees; gradient boosting adds its stages, times the learning rate, to its initial log-odds) the
same holds: ``baseValue + Σ contributions`` is the model's output for the row, in its own scale.

This is decision-path attribution (Saabas; the "treeinterpreter" method), **not SHAP**: it is exact
in the sense above and costs one more walk of the trees, but it depends on the order of the splits
(an interaction is credited to whichever feature splits lower on the path).

Scales: a random forest's output is a probability; gradient boosting's is its log-odds. With
sigmoid calibration, ``p = sigmoid(a·f + b)`` is linear in the model's output ``f``, so the credits
are scaled by ``a`` and the explained value is the calibrated log-odds. Isotonic calibration is not
linear: the explanation is then of the output before calibration, and says so.

The graph (``explain.onnx``): an ONNX-ML ``TreeEnsembleRegressor`` over the very nodes of
``model.onnx`` (copied from it, so both take the same path for the same float32 row) with one
target per feature; each leaf carries its path's credits. It is checked at export against the
direct computation from the fitted scikit-learn trees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper
from scipy import sparse
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

from ml_matching.contract import Explanation, ExplanationParity, compare
from ml_matching.training.errors import ParityError
from ml_matching.training.export import INPUT_NAME, onnx_session

EXPLAIN_FILE = "explain.onnx"
OUTPUT = "contributions"
METHOD = "decision-path attribution (Saabas), not SHAP"
Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Tree:
    """One tree's credits: ``credits[c, f]`` is what reaching node ``c`` from its parent adds to
    feature ``f`` (already weighted for the ensemble and the scale)."""

    sk: Any  # the scikit-learn tree_ object
    credits: sparse.csr_matrix


@dataclass(frozen=True)
class Explainer:
    """What explains a fitted model: its trees' credits, the base value and the scale."""

    trees: tuple[Tree, ...]
    base_value: float
    scale: str
    n_features: int

    def contributions(self, x: npt.NDArray[Any]) -> Matrix:
        """The credits of rows ``x`` computed from the scikit-learn trees (float64)."""
        x32 = np.asarray(x, dtype=np.float32)  # the trees compare float32 values, as ONNX does
        out = np.zeros((len(x32), self.n_features))
        for tree in self.trees:
            out += np.asarray((tree.sk.decision_path(x32) @ tree.credits).todense())
        return out


def explainer(model: Any) -> Explainer:
    """The explainer of a fitted forest or boosting, calibrated or not."""
    forest, linear, scale = _unwrap(model)
    a, b = linear
    if isinstance(forest, RandomForestClassifier):
        weight = 1.0 / len(forest.estimators_)
        trees = [(t.tree_, _class_one(t.tree_)) for t in forest.estimators_]
        base = 0.0
    elif isinstance(forest, GradientBoostingClassifier):
        weight = float(forest.learning_rate)
        trees = [(t.tree_, t.tree_.value[:, 0, 0]) for t in forest.estimators_[:, 0]]
        base = _initial_log_odds(forest)
    else:
        raise TypeError(f"no explainer for {type(forest).__name__}")
    n = forest.n_features_in_
    built, root_total = [], 0.0
    for sk, leaf_values in trees:
        values = _node_values(sk, leaf_values)
        root_total += values[0]
        built.append(Tree(sk, _credits(sk, values, n) * (weight * a)))
    return Explainer(tuple(built), float(a * (base + weight * root_total) + b), scale, n)


def _unwrap(model: Any) -> tuple[Any, tuple[float, float], str]:
    """The ensemble, the linear map from its output to the explained scale, and that scale."""
    if not isinstance(model, CalibratedClassifierCV):
        native = "probability" if isinstance(model, RandomForestClassifier) else "log-odds"
        return model, (1.0, 0.0), native
    inner = model.calibrated_classifiers_[0]
    forest = inner.estimator
    native = "probability" if isinstance(forest, RandomForestClassifier) else "log-odds"
    if model.method == "sigmoid":
        # scikit-learn's sigmoid calibration: p = 1 / (1 + exp(a·f + b)), so log-odds = −a·f − b.
        calibrator = inner.calibrators[0]
        return forest, (-float(calibrator.a_), -float(calibrator.b_)), "log-odds"
    return forest, (1.0, 0.0), f"{native} before isotonic calibration"


def _class_one(tree: Any) -> Matrix:
    """Each node's share of class 1 (a forest's tree outputs it at its leaves)."""
    counts = tree.value[:, 0, :]
    return np.asarray(counts[:, 1] / counts.sum(axis=1), dtype=np.float64)


def _initial_log_odds(forest: GradientBoostingClassifier) -> float:
    """Gradient boosting's starting log-odds: its decision function minus its stages' sum."""
    x = np.zeros((1, forest.n_features_in_), dtype=np.float32)
    stages = sum(t.predict(x)[0] for t in forest.estimators_[:, 0])
    return float(forest.decision_function(x)[0] - forest.learning_rate * stages)


def _node_values(tree: Any, leaf_values: Matrix) -> Matrix:
    """Leaves keep their value; an inner node gets its children's, weighted by training samples.

    Children have higher ids than their parent, so one pass from the last node up suffices.
    """
    values = np.array(leaf_values, dtype=np.float64)
    weight = tree.weighted_n_node_samples
    left, right = tree.children_left, tree.children_right
    for node in range(tree.node_count - 1, -1, -1):
        lo, hi = left[node], right[node]
        if lo != -1:
            values[node] = (weight[lo] * values[lo] + weight[hi] * values[hi]) / (weight[lo] + weight[hi])
    return values


def _credits(tree: Any, values: Matrix, n_features: int) -> sparse.csr_matrix:
    """Row ``c``: at the feature its parent splits on, ``value(c) − value(parent)``."""
    rows, cols, data = [], [], []
    for parent in range(tree.node_count):
        feature = tree.feature[parent]
        for child in (tree.children_left[parent], tree.children_right[parent]):
            if child != -1:
                rows.append(child)
                cols.append(feature)
                data.append(values[child] - values[parent])
    return sparse.csr_matrix((data, (rows, cols)), shape=(tree.node_count, n_features))


# --- the ONNX graph ---------------------------------------------------------------------------


def explain_graph(model_onnx: bytes, explained: Explainer, ml_opset: int) -> bytes:
    """A ``TreeEnsembleRegressor`` on ``model.onnx``'s nodes whose leaves carry the path credits."""
    exported = onnx.load_from_string(model_onnx)
    source = _tree_node(exported)
    nodes = {a.name: helper.get_attribute_value(a) for a in source.attribute if a.name.startswith("nodes_")}
    tree_ids, node_ids, target_ids, weights = _leaf_targets(explained, nodes)
    regressor = helper.make_node(
        "TreeEnsembleRegressor",
        [INPUT_NAME],
        [OUTPUT],
        domain="ai.onnx.ml",
        n_targets=explained.n_features,
        aggregate_function="SUM",
        post_transform="NONE",
        target_treeids=tree_ids,
        target_nodeids=node_ids,
        target_ids=target_ids,
        target_weights=weights,
        **nodes,
    )
    n = explained.n_features
    graph = helper.make_graph(
        [regressor],
        "ml-matching-explain",
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [None, n])],
        [helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, [None, n])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", ml_opset)]
    # The IR version of model.onnx, not the newest onnx knows: older onnxruntimes refuse newer ones.
    model = helper.make_model(
        graph, opset_imports=opsets, producer_name="ml-matching", ir_version=exported.ir_version
    )
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def _tree_node(model: onnx.ModelProto) -> onnx.NodeProto:
    found = [n for n in model.graph.node if n.op_type in ("TreeEnsembleClassifier", "TreeEnsembleRegressor")]
    if len(found) != 1:
        raise ValueError(f"model.onnx has {len(found)} tree ensembles; the explainer expects one")
    node: onnx.NodeProto = found[0]
    return node


def _leaf_targets(
    explained: Explainer, nodes: dict[str, Any]
) -> tuple[list[int], list[int], list[int], list[float]]:
    """For each leaf of the graph (tree id, node id), its path's non-zero credits per feature."""
    paths = [_path_sums(tree) for tree in explained.trees]
    tree_ids, node_ids, target_ids, weights = [], [], [], []
    for t, node, mode in zip(
        nodes["nodes_treeids"], nodes["nodes_nodeids"], nodes["nodes_modes"], strict=True
    ):
        if mode not in (b"LEAF", "LEAF"):
            continue
        row = paths[t][node]
        for feature in np.flatnonzero(row):
            tree_ids.append(int(t))
            node_ids.append(int(node))
            target_ids.append(int(feature))
            weights.append(float(row[feature]))
    return tree_ids, node_ids, target_ids, weights


def _path_sums(tree: Tree) -> Matrix:
    """``sums[c]``: the credits of the whole path from the root to node ``c``."""
    credits = np.asarray(tree.credits.todense())
    sums = np.zeros_like(credits)
    left, right = tree.sk.children_left, tree.sk.children_right
    for parent in range(tree.sk.node_count):  # parents come before their children
        for child in (left[parent], right[parent]):
            if child != -1:
                sums[child] = sums[parent] + credits[child]
    return sums


# --- the checks -------------------------------------------------------------------------------


def explained_output(model: Any, x: npt.NDArray[Any]) -> Matrix:
    """The model's output for rows ``x`` in the explainer's scale: what ``base + Σ`` must equal."""
    forest, (a, b), _ = _unwrap(model)
    x64 = np.asarray(x, dtype=np.float64)
    if isinstance(forest, RandomForestClassifier):
        f = forest.predict_proba(x64)[:, 1]
    else:
        f = forest.decision_function(x64)
    return np.asarray(a * f + b, dtype=np.float64)


def check_explainer(
    graph: bytes, explained: Explainer, model: Any, x: npt.NDArray[np.float32], tolerance: float
) -> ExplanationParity:
    """On rows ``x``: the graph's contributions against the direct computation from the trees, and
    ``base + Σ`` against the model's output.

    Raises
    ------
    ParityError
        A contribution, or a sum, differs by more than ``tolerance``.
    """
    got = run(graph, x).astype(np.float64)
    trees = compare(explained.contributions(x).ravel(), got.ravel())
    if not trees.within(tolerance):
        row, feature = divmod(trees.worst_row, explained.n_features)
        raise ParityError(
            f"explain.onnx differs from the trees on row {row}, feature {feature}: "
            f"{trees.got:.8f} vs {trees.expected:.8f} (|diff| {trees.max_abs_diff:.3e} > {tolerance:g})"
        )
    sums = compare(explained_output(model, x), explained.base_value + got.sum(axis=1))
    if not sums.within(tolerance):
        raise ParityError(
            f"explanations do not add up on row {sums.worst_row}: base + contributions = {sums.got:.8f}, "
            f"the model gives {sums.expected:.8f} ({explained.scale}; |diff| {sums.max_abs_diff:.3e})"
        )
    return ExplanationParity(
        rows=len(x), max_abs_diff=trees.max_abs_diff, sum_max_abs_diff=sums.max_abs_diff, tolerance=tolerance
    )


def run(graph: bytes, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The explainer graph's contributions for rows ``x``, as a runtime computes them."""
    (out,) = onnx_session(graph).run([OUTPUT], {INPUT_NAME: x})
    return np.asarray(out, dtype=np.float32)


def record(explained: Explainer, parity: ExplanationParity, golden_x: npt.NDArray[np.float32]) -> Explanation:
    """The sidecar's ``explanation``, with the golden rows' contributions (from the trees)."""
    golden = explained.contributions(golden_x)
    return Explanation(
        file=EXPLAIN_FILE,
        method=METHOD,
        scale=explained.scale,
        base_value=explained.base_value,
        output=OUTPUT,
        parity=parity,
        golden_contributions=tuple(tuple(float(v) for v in row) for row in golden),
    )
