"""The contract every room stands on: the artifact format, the store, verification, the domain's
errors, the wording of a refused value, the settings reader and schema generation. It imports
nothing else of ml-matching.

One version of a model is a folder of the store holding ``model.onnx`` and its sidecar
``model.json``; ``ACTIVE`` names the version to serve. This package is the single definition of

- **feature sets**: :class:`Feature`, :class:`FeatureSet`, :func:`load_feature_set`,
  :func:`default_feature_set`, and the wording of an out-of-range value;
- **the sidecar**: :class:`Sidecar` and its parts, :func:`encode_sidecar`, :func:`decode_sidecar`,
  :data:`ALGORITHMS`;
- **the store**: version names, :func:`list_versions`, ``ACTIVE``, :func:`publish_version`;
- **verification**: :func:`load_version` / :func:`load_dir` give a :class:`LoadedModel` only when
  every check passes, and :func:`compare` is the one row-by-row comparison behind the golden rows
  and the parity gate;
- **errors** (:mod:`.errors`), **wording** of refused rows (:mod:`.validation`), **settings**
  (:mod:`.settings`) and **schema generation** (:mod:`.schemas`).

Training (the writer), the runtime and the trainer service (readers) import it by these names; the
Node client follows the same contract through ``schemas/model.schema.json``.
"""

from __future__ import annotations

from ml_matching.contract.compare import GOLDEN_TOLERANCE, Comparison, compare
from ml_matching.contract.errors import (
    ArtifactCorrupt,
    ExperimentNotFound,
    FileNotInVersion,
    HoldoutNotFound,
    InvalidInput,
    MissingDependency,
    MLMatchingError,
    ModelNotReady,
    SettingsError,
    StorageFull,
    VersionNotFound,
)
from ml_matching.contract.explainer import EXPLAIN_LOADS, Explainer, ExplainLoad
from ml_matching.contract.features import (
    Feature,
    FeatureSet,
    default_feature_set,
    feature_set_from_obj,
    load_feature_set,
    number_text,
    range_text,
    schemas_dir,
)
from ml_matching.contract.sessions import new_session, session_options
from ml_matching.contract.sidecar import (
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
from ml_matching.contract.store import (
    ACTIVE_FILE,
    HISTORY_FILE,
    MEDIA_TYPES,
    MODEL_FILE,
    SIDECAR_FILE,
    amend_version,
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
from ml_matching.contract.verify import (
    LoadedModel,
    Rows32,
    check_files,
    check_golden_rows,
    load_dir,
    load_version,
    normalised_importance,
)

__all__ = [
    "ACTIVE_FILE",
    "ALGORITHMS",
    "EXPLAIN_LOADS",
    "GOLDEN_TOLERANCE",
    "HISTORY_FILE",
    "MEDIA_TYPES",
    "MODEL_FILE",
    "SCHEMA_VERSION",
    "SIDECAR_FILE",
    "ArtifactCorrupt",
    "Baseline",
    "BaselineMetrics",
    "Calibration",
    "CalibrationFigures",
    "Comparison",
    "CrossValidation",
    "ExperimentNotFound",
    "ExplainLoad",
    "Explainer",
    "Explanation",
    "ExplanationParity",
    "Feature",
    "FeatureSet",
    "FeatureStats",
    "FileInfo",
    "FileNotInVersion",
    "GateDecision",
    "GoldenRow",
    "Histogram",
    "HoldoutNotFound",
    "Importance",
    "InvalidInput",
    "LoadedModel",
    "MLMatchingError",
    "Metrics",
    "MissingDependency",
    "ModelMetrics",
    "ModelNotReady",
    "OnnxInfo",
    "Overfitting",
    "Parity",
    "Rows32",
    "SettingsError",
    "Sidecar",
    "StorageFull",
    "TrainingData",
    "VersionNotFound",
    "amend_version",
    "check_files",
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
    "new_session",
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
