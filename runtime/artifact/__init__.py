"""The artifact contract: what training writes and every runtime reads.

One version of a model is a folder of the store holding ``model.onnx`` and its sidecar
``model.json``; ``ACTIVE`` names the version to serve. This package is the single definition of

- **feature sets**: :class:`Feature`, :class:`FeatureSet`, :func:`load_feature_set`,
  :func:`default_feature_set`, and the wording of an out-of-range value;
- **the sidecar**: :class:`Sidecar` and its parts, :func:`encode_sidecar`, :func:`decode_sidecar`,
  :data:`ALGORITHMS`;
- **the store**: version names, :func:`list_versions`, ``ACTIVE``, :func:`publish_version`;
- **verification**: :func:`load_version` / :func:`load_dir` give a :class:`LoadedModel` only when
  every check passes, and :func:`compare` is the one row-by-row comparison behind the golden rows
  and the parity gate.

Training (the writer), the runtime and the trainer service (readers) import it by these names; the
Node client follows the same contract through ``schemas/model.schema.json``.
"""

from __future__ import annotations

from runtime.artifact._features import (
    Feature,
    FeatureSet,
    default_feature_set,
    feature_set_from_obj,
    load_feature_set,
    number_text,
    range_text,
    schemas_dir,
)
from runtime.artifact._sidecar import (
    ALGORITHMS,
    SCHEMA_VERSION,
    Baseline,
    BaselineMetrics,
    Calibration,
    CalibrationFigures,
    CrossValidation,
    Explanation,
    ExplanationParity,
    FeatureStats,
    FileInfo,
    GateDecision,
    GoldenRow,
    Histogram,
    Importance,
    Metrics,
    ModelMetrics,
    OnnxInfo,
    Overfitting,
    Parity,
    Sidecar,
    TrainingData,
    decode_sidecar,
    encode_sidecar,
)
from runtime.artifact._store import (
    ACTIVE_FILE,
    HISTORY_FILE,
    MODEL_FILE,
    SIDECAR_FILE,
    check_version_name,
    clean_leftovers,
    free_version_name,
    list_versions,
    media_type,
    pin,
    publish_version,
    read_active,
    read_history,
    version_dir,
    version_stamp,
    write_active,
)
from runtime.artifact._verify import (
    GOLDEN_TOLERANCE,
    Comparison,
    LoadedModel,
    check_files,
    check_golden_explanations,
    check_golden_rows,
    compare,
    load_dir,
    load_version,
    normalised_importance,
    session_options,
)

__all__ = [
    "ACTIVE_FILE",
    "ALGORITHMS",
    "GOLDEN_TOLERANCE",
    "HISTORY_FILE",
    "MODEL_FILE",
    "SCHEMA_VERSION",
    "SIDECAR_FILE",
    "Baseline",
    "BaselineMetrics",
    "Calibration",
    "CalibrationFigures",
    "Comparison",
    "CrossValidation",
    "Explanation",
    "ExplanationParity",
    "Feature",
    "FeatureSet",
    "FeatureStats",
    "FileInfo",
    "GateDecision",
    "GoldenRow",
    "Histogram",
    "Importance",
    "LoadedModel",
    "Metrics",
    "ModelMetrics",
    "OnnxInfo",
    "Overfitting",
    "Parity",
    "Sidecar",
    "TrainingData",
    "check_files",
    "check_golden_explanations",
    "check_golden_rows",
    "check_version_name",
    "clean_leftovers",
    "compare",
    "decode_sidecar",
    "default_feature_set",
    "encode_sidecar",
    "feature_set_from_obj",
    "free_version_name",
    "list_versions",
    "load_dir",
    "load_feature_set",
    "load_version",
    "media_type",
    "normalised_importance",
    "number_text",
    "pin",
    "publish_version",
    "range_text",
    "read_active",
    "read_history",
    "schemas_dir",
    "session_options",
    "version_dir",
    "version_stamp",
    "write_active",
]
