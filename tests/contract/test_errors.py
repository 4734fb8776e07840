"""The contract's errors cross process boundaries: a worker (Dask, joblib) that raises one can send it
back, and it arrives with its message and fields."""

from __future__ import annotations

import pickle

from ml_matching.contract import ArtifactCorrupt, InvalidInput, VersionNotFound


def test_errors_survive_pickling() -> None:
    corrupt = pickle.loads(pickle.dumps(ArtifactCorrupt("sha256", "model.onnx does not match")))
    assert (str(corrupt), corrupt.check) == ("sha256: model.onnx does not match", "sha256")
    for error in (
        InvalidInput("feature `brandFit`: value 1.5 is outside [0, 1]"),
        VersionNotFound("no 2026"),
    ):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error)
