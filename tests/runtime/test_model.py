from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np
import pytest

from ml_matching.contract import (
    ArtifactCorrupt,
    InvalidInput,
    VersionNotFound,
    check_golden_rows,
    load_version,
    normalised_importance,
)
from tests.conftest import FEATURE_NAMES, GB_VERSION, RF_VERSION
from tests.runtime.corrupt import CORRUPTIONS, EXPLAINER_CORRUPTIONS


@pytest.mark.parametrize("version", [RF_VERSION, GB_VERSION])
def test_fixture_versions_load_and_verify(store: Path, version: str) -> None:
    model = load_version(store, version)
    assert model.version == version
    assert model.feature_set.names == tuple(FEATURE_NAMES)
    assert check_golden_rows(model) <= 1e-5
    assert sum(model.importance.values()) == pytest.approx(1.0)


def test_probabilities_are_a_row_function(store: Path) -> None:
    model = load_version(store, RF_VERSION)
    x = np.random.default_rng(0).uniform(size=(64, 19)).astype(np.float32)
    together = model.predict_proba(x)
    one_by_one = np.concatenate([model.predict_proba(x[i : i + 1]) for i in range(64)])
    assert np.array_equal(together, one_by_one)
    assert ((together >= 0) & (together <= 1)).all()


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_each_corruption_is_refused_by_its_check(store: Path, kind: str) -> None:
    corrupt, check = CORRUPTIONS[kind]
    corrupt(store / GB_VERSION)
    with pytest.raises(ArtifactCorrupt) as info:
        load_version(store, GB_VERSION)
    assert info.value.check == check
    assert str(info.value).startswith(f"{check}: ")


@pytest.mark.parametrize("kind", EXPLAINER_CORRUPTIONS)
def test_a_lazy_explainer_is_checked_at_its_first_use_and_its_refusal_kept(store: Path, kind: str) -> None:
    corrupt, check = CORRUPTIONS[kind]
    corrupt(store / GB_VERSION)
    model = load_version(store, GB_VERSION, explain="lazy")  # the model itself verifies
    assert model.explainer is not None and not model.explainer.loaded
    x = np.full((1, 19), 0.5, dtype=np.float32)
    assert model.predict_proba(x).shape == (1,)
    refusals = []
    for _ in range(3):  # refused again without a second look: a version's files never change
        with pytest.raises(ArtifactCorrupt) as info:
            model.contributions(x)
        assert info.value.check == check
        refusals.append((info.value, len(traceback.extract_tb(info.value.__traceback__))))
    assert not model.explainer.loaded
    # Each refusal is an error of its own: one error raised again would gather every request's
    # frames (and the rows in them) in its traceback, for as long as the version serves.
    (first, _), *later = refusals
    assert all(e is not first and str(e) == str(first) for e, _ in later)
    assert refusals[1][1] == refusals[2][1]


def test_a_lazy_explainer_answers_as_an_eager_one(store: Path) -> None:
    x = np.random.default_rng(1).uniform(size=(8, 19)).astype(np.float32)
    lazy, eager = load_version(store, GB_VERSION, explain="lazy"), load_version(store, GB_VERSION)
    assert lazy.explainer is not None and eager.explainer is not None
    assert not lazy.explainer.loaded and eager.explainer.loaded
    assert np.array_equal(lazy.contributions(x), eager.contributions(x))
    assert load_version(store, GB_VERSION, explain="off").explainer is None


def test_sidecar_must_name_its_own_folder(store: Path) -> None:
    (store / "20260109_000000").mkdir()
    for name in ("model.json", "model.onnx"):
        (store / "20260109_000000" / name).write_bytes((store / RF_VERSION / name).read_bytes())
    with pytest.raises(ArtifactCorrupt, match="sidecar names version 20260101_000000"):
        load_version(store, "20260109_000000")


@pytest.mark.parametrize(
    ("version", "error"), [("20990101_000000", VersionNotFound), ("../store", InvalidInput)]
)
def test_missing_and_malformed_versions(store: Path, version: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        load_version(store, version)


def test_importance_is_normalised_and_clamped() -> None:
    assert normalised_importance({"a": 2.0, "b": -1.0, "c": 2.0}, ("a", "b", "c")) == {
        "a": 0.5,
        "b": 0.0,
        "c": 0.5,
    }
    assert normalised_importance({}, ("a",)) == {"a": 0.0}


def test_the_heap_a_load_freed_is_given_back(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once after the model's session, once after the explainer's (built at its first use)."""
    from ml_matching.contract import sessions

    if sessions._malloc_trim() is None:
        pytest.skip("the C library has no malloc_trim (not glibc)")
    calls: list[int] = []
    monkeypatch.setattr(sessions, "_malloc_trim", lambda: calls.append)
    model = load_version(store, GB_VERSION, explain="lazy")
    assert calls == [0]
    model.contributions(np.full((1, 19), 0.5, dtype=np.float32))
    assert calls == [0, 0]
