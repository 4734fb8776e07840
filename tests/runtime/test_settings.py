from __future__ import annotations

from pathlib import Path

import pytest

from ml_matching.contract import SettingsError
from ml_matching.runtime.settings import Settings


def test_defaults_match_the_seed() -> None:
    s = Settings.from_environ({})
    assert (s.host, s.port, s.log_level, s.model_type) == ("0.0.0.0", 8000, "INFO", "random_forest")
    assert s.models_dir == Path("artifacts")
    assert s.model_version is None and s.admin_token is None and s.allowed_origins == ()
    assert s.max_batch_rows == 10_000


def test_every_variable_is_read() -> None:
    s = Settings.from_environ(
        {
            "ML_SERVICE_HOST": "127.0.0.1",
            "ML_SERVICE_PORT": "9000",
            "LOG_LEVEL": "debug",
            "MODEL_TYPE": "gradient_boosting",
            "MODELS_DIR": "/srv/models",
            "MODEL_VERSION": "20260101_000000",
            "ALLOWED_ORIGINS": "http://localhost:3000, https://app.example/",
            "ML_SERVICE_ADMIN_TOKEN": "s3cret",
            "MAX_BATCH_ROWS": "500",
            "MAX_BODY_BYTES": "2048",
            "ONNX_THREADS": "2",
            "METRICS": "off",
            "DRIFT_WINDOW": "2000",
            "DRIFT_MIN_ROWS": "100",
            "ML_SERVICE_WORKERS": "4",
            "MODEL_NAME": "matcher",
        }
    )
    assert (s.metrics, s.drift_window, s.drift_min_rows, s.workers, s.model_name) == (
        False,
        2000,
        100,
        4,
        "matcher",
    )
    assert s.host == "127.0.0.1" and s.port == 9000 and s.log_level == "DEBUG"
    assert s.model_type == "gradient_boosting" and s.models_dir == Path("/srv/models")
    assert s.model_version == "20260101_000000" and s.admin_token == "s3cret"
    assert s.allowed_origins == ("http://localhost:3000", "https://app.example")
    assert (s.max_batch_rows, s.max_body_bytes, s.onnx_threads) == (500, 2048, 2)


def test_empty_values_count_as_unset() -> None:
    assert Settings.from_environ({"ML_SERVICE_PORT": "", "MODEL_VERSION": "  "}) == Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ML_SERVICE_PORT", "eighty"),
        ("ML_SERVICE_PORT", "70000"),
        ("LOG_LEVEL", "LOUD"),
        ("MODEL_TYPE", "xgboost"),
        ("MODEL_VERSION", "../latest"),
        ("ALLOWED_ORIGINS", "localhost:3000"),
        ("MAX_BATCH_ROWS", "0"),
        ("MAX_BODY_BYTES", "12"),
        ("ONNX_THREADS", "-1"),
        ("METRICS", "maybe"),
        ("DRIFT_WINDOW", "0"),
        ("DRIFT_WINDOW", "2000000"),
        ("ML_SERVICE_WORKERS", "0"),
        ("MODEL_NAME", "ml matching"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_environ({name: value})


def test_several_workers_need_the_active_watch() -> None:
    with pytest.raises(SettingsError, match="ML_SERVICE_WORKERS=2 needs MODEL_WATCH_SECONDS > 0"):
        Settings.from_environ({"ML_SERVICE_WORKERS": "2", "MODEL_WATCH_SECONDS": "0"})
