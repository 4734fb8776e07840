"""Where training's parallel parts run: this machine's cores, or a Dask cluster.

``fit --dask ADDRESS`` (or ``DASK_SCHEDULER_ADDRESS``) connects a ``distributed.Client`` to the
scheduler and makes joblib's Dask backend the active one for the whole training, so every joblib
``Parallel`` of it runs there: the cross-validation folds (with the final fit) and the forest's
trees (joblib runs a task's own ``Parallel`` on the cluster too). Permutation importance stays
here: a few calls on a sample of held-out rows (:mod:`training.importance`). Nothing else
changes: the estimators are seeded and their predictions made in a fixed order, so the metrics and
``model.onnx`` are the same to the bit, locally and on Dask.

Dask is the ``dask`` extra; it is imported here, when a scheduler is given, and nowhere else (never
by the runtime). The cluster's workers need ml-matching with the ``train`` extra, the same versions
as here (Dask checks and warns).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version

from ml_matching.contract import InvalidInput, MissingDependency
from ml_matching.contract.scheduler import ENVIRONMENT, scheduler_address, scheme_of, shown
from ml_matching.contract.settings import read_settings, setting
from ml_matching.training.errors import ClusterUnavailable

INSTALL_HINT = (
    "training on Dask needs the `dask` extra ({missing} is missing): `pip install 'ml-matching[dask]'`, "
    "or `uv sync --extra train --extra dask` in a checkout of ml-matching"
)
#: Seconds to wait for the scheduler to answer.
CONNECT_TIMEOUT = 30


@dataclass(frozen=True)
class FitSettings:
    """What ``fit`` reads from the environment (its flags win)."""

    dask: str | None = setting(
        None,
        ENVIRONMENT,
        "Dask scheduler that `fit` runs its folds and trees on, when --dask is "
        "not given (e.g. tcp://scheduler:8786); unset: this machine's cores",
        scheduler_address,
    )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> FitSettings:
        """Read from ``environ`` (e.g. ``os.environ``); a bad value raises SettingsError naming it."""
        return read_settings(cls, environ)


@dataclass(frozen=True)
class Compute:
    """Where a training ran: ``provenance`` goes into the sidecar's ``libraries`` (empty locally)."""

    address: str | None = None
    workers: int = 0
    threads: int = 0
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def distributed(self) -> bool:
        return self.address is not None

    def describe(self) -> str:
        if self.address is None:
            return "this machine"
        return f"Dask at {shown(self.address)} ({self.workers} workers, {self.threads} threads)"


@contextlib.contextmanager
def compute(address: str | None) -> Iterator[Compute]:
    """Run the enclosed training's joblib work on the Dask scheduler at ``address`` (None: locally).

    Raises
    ------
    InvalidInput
        ``address`` is not a scheduler address.
    MissingDependency
        The ``dask`` extra is not installed.
    ClusterUnavailable
        The scheduler did not answer.
    """
    if address is None:
        yield Compute()
        return
    try:
        address = scheduler_address(address)
    except ValueError as exc:
        raise InvalidInput(f"Dask scheduler address {address!r}: {exc}") from None
    require_dask()
    import distributed
    from joblib import parallel_config

    try:  # (distributed's Client is not annotated)
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise ClusterUnavailable(f"no Dask scheduler answers at {shown(address)}: {exc}") from None
    with client, parallel_config(backend="dask", client=client):
        threads: dict[str, int] = client.nthreads()  # type: ignore[no-untyped-call]
        yield Compute(address, len(threads), sum(threads.values()), _provenance(address))


def require_dask() -> None:
    """Raise :class:`MissingDependency` naming the install command when the ``dask`` extra is missing
    (a service that is given a scheduler calls it at start-up, not at its first training)."""
    for module in ("dask", "distributed"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingDependency(INSTALL_HINT.format(missing=exc.name or module)) from exc


def _provenance(address: str) -> dict[str, str]:
    versions = {name: _version(name) for name in ("dask", "distributed")}
    return {**versions, "dask-scheduler": scheme_of(address)}


def _version(name: str) -> str:
    try:
        return dist_version(name)
    except PackageNotFoundError:  # imported from a path that was never installed
        return "not installed"
