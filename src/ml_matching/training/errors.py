"""The errors training raises on purpose; each has a stable ``code`` like the contract's.

Exception tree (the root and ``InvalidInput`` are :mod:`ml_matching.contract.errors`')::

    MLMatchingError
    ├── InvalidInput
    │   └── DataError                   invalid_data    outcomes that cannot be trained on
    ├── ParityError (ValueError)        parity_failed   ONNX disagrees with scikit-learn
    └── ClusterUnavailable              cluster_unavailable  no Dask scheduler answers (fit --dask)
        (ConnectionError)

The command line exits with 2 on an ``InvalidInput`` and 1 on any other of these.
"""

from __future__ import annotations

from ml_matching.contract import InvalidInput, MLMatchingError


class DataError(InvalidInput):
    """The outcomes cannot be trained on; the message names the file, row or column."""

    code = "invalid_data"
    when = "outcomes that cannot be trained on (too few rows, one class, a bad value; the detail names it)"
    example = "request body: 42 rows; training needs at least 50"


class ParityError(MLMatchingError, ValueError):
    """onnxruntime disagrees with scikit-learn beyond the tolerance; nothing is published."""

    code = "parity_failed"
    when = "an exported model that onnxruntime scores differently from scikit-learn; nothing is published"
    example = "ONNX export differs from scikit-learn on row 3: p_sklearn=0.81234567, p_onnx=0.81200000"


class ClusterUnavailable(MLMatchingError, ConnectionError):
    """``fit --dask``: no Dask scheduler answers at the address; nothing was trained."""

    code = "cluster_unavailable"
    when = "training on a Dask cluster whose scheduler does not answer; nothing is trained or written"
    example = "no Dask scheduler answers at tcp://scheduler:8786: Timed out trying to connect"
