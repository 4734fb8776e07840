"""ml-matching: predict whether an influencer–brand collaboration will succeed, serve the score, and
learn from the outcomes.

One namespace, rooms by layer (each imports only the rooms listed after it)::

    contract   the artifact format, store, verification, errors, settings reader   (nothing of ours)
    http       the Litestar kit both services share                                contract
    runtime    the scoring service: no scikit-learn, ever                          contract, http
    training   fit, calibrate, explain, export, gate, publish (the train extra)    contract
    trainer    the service that stores outcomes, retrains and promotes             contract, http, training

The command line is ``ml-matching`` (:mod:`ml_matching.cli`). Importing this package imports no room.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ml-matching")
except PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
