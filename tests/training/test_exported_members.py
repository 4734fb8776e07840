from __future__ import annotations

import training


def test_training_public_surface() -> None:
    assert training.__all__ == sorted(training.__all__)
    assert training.__all__ == [
        "Dataset", "FitResult", "TrainConfig", "fit_and_publish", "load_config", "load_dataset", "synthesize",
    ]  # fmt: skip
    for name in training.__all__:
        assert getattr(training, name).__module__.startswith("training.")
