"""What the store holds, read for the API: the versions, their sidecars (cached) and their files."""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ml_matching.contract import (
    MODEL_FILE,
    SIDECAR_FILE,
    FileNotInVersion,
    InvalidInput,
    MLMatchingError,
    Sidecar,
    decode_sidecar,
    list_versions,
    media_type,
    version_dir,
)
from ml_matching.runtime.responses import ModelSummary, SummaryMetrics

_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Parsed sidecars kept, the most recently read: each is tens of KB (its golden rows, metrics and
#: explanation), and a store gains a version at every retraining (thousands a year with the
#: defaults), so ``GET /models`` keeps only each version's summary, not its whole sidecar.
SIDECARS_KEPT = 32
Stamp = tuple[int, int]


@dataclass(frozen=True)
class VersionFile:
    """A file of a version, as the files endpoint serves it."""

    path: Path
    sha256: str
    media_type: str


class StoreView:
    """The store as the API reads it. Sidecars are cached while model.json is unchanged: a published
    version changes only when ``ml-matching card`` redraws its card, which rewrites model.json, and
    the (mtime, size) stamp notices that."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sidecars: OrderedDict[str, tuple[Stamp, Sidecar]] = OrderedDict()  # least recent first
        self._summaries: dict[str, tuple[Stamp, ModelSummary]] = {}  # every listed version's
        self._sidecar_hashes: dict[str, tuple[Stamp, str]] = {}
        self._lock = threading.Lock()

    def sidecar(self, version: str) -> Sidecar:
        """The parsed sidecar of ``version`` (cached while model.json is unchanged, for the
        :data:`SIDECARS_KEPT` versions read last)."""
        path = version_dir(self.root, version) / SIDECAR_FILE
        stamp = _stamp(path)
        with self._lock:  # handlers read it from worker threads: one may evict what another reads
            cached = self._sidecars.pop(version, None)
            if cached is None or cached[0] != stamp:
                cached = (stamp, decode_sidecar(path.read_bytes()))
            self._sidecars[version] = cached  # the most recent last
            if len(self._sidecars) > SIDECARS_KEPT:
                self._sidecars.popitem(last=False)
        return cached[1]

    @property
    def sidecars_kept(self) -> int:
        """How many parsed sidecars are held now (at most :data:`SIDECARS_KEPT`)."""
        return len(self._sidecars)

    def _sidecar_hash(self, version: str) -> str:
        path = version_dir(self.root, version) / SIDECAR_FILE
        stamp = _stamp(path)
        cached = self._sidecar_hashes.get(version)
        if cached is None or cached[0] != stamp:
            cached = self._sidecar_hashes[version] = (stamp, hashlib.sha256(path.read_bytes()).hexdigest())
        return cached[1]

    def version_file(self, version: str, name: str) -> VersionFile:
        """A file the version's sidecar lists (or the sidecar itself), with its sha256.

        Raises
        ------
        InvalidInput
            ``name`` is not a plain file name (no folders, no ``..``).
        VersionNotFound, FileNotInVersion
            No such version, or the version lists no such file.
        """
        if not _FILE_NAME.fullmatch(name) or ".." in name:
            raise InvalidInput(
                f"file name {name!r} is not a plain file name (letters, digits, `.`, `_`, `-`)"
            )
        folder = version_dir(self.root, version)
        sidecar = self.sidecar(version)
        listed = {MODEL_FILE: sidecar.onnx.sha256, **{n: f.sha256 for n, f in sidecar.files.items()}}
        if name == SIDECAR_FILE:
            listed[name] = self._sidecar_hash(version)
        if name not in listed:
            have = ", ".join(sorted([*listed, SIDECAR_FILE]))
            raise FileNotInVersion(f"version {version} has no file `{name}` (it has {have})")
        media = sidecar.files[name].media_type if name in sidecar.files else media_type(name)
        return VersionFile(folder / name, listed[name], media)

    def sidecar_bytes(self, version: str) -> bytes:
        """``model.json`` of ``version`` as stored."""
        return (version_dir(self.root, version) / SIDECAR_FILE).read_bytes()

    def listing(self, current: str | None) -> list[ModelSummary]:
        """Every version with its algorithm, time, summary metrics and whether it is ``current``."""
        versions = list_versions(self.root)
        for gone in self._summaries.keys() - set(versions):  # removed from the store
            del self._summaries[gone]
        return [msgspec.structs.replace(self._summary(v), active=v == current) for v in versions]

    def _summary(self, version: str) -> ModelSummary:
        """What ``GET /models`` says of ``version`` (``active`` left false), kept while model.json
        is unchanged; its sidecar is parsed for it but not kept."""
        path = version_dir(self.root, version) / SIDECAR_FILE
        try:
            stamp = _stamp(path)
            cached = self._summaries.get(version)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            kept = self._sidecars.get(version)
            s = kept[1] if kept is not None and kept[0] == stamp else decode_sidecar(path.read_bytes())
        except (MLMatchingError, OSError) as exc:
            return ModelSummary(version=version, active=False, error=str(exc))
        metrics = SummaryMetrics(cross_validation=s.metrics.cross_validation.mean, holdout=s.metrics.holdout)
        summary = ModelSummary(
            version=version, active=False, timestamp=s.created_at, algorithm=s.algorithm, metrics=metrics
        )
        self._summaries[version] = (stamp, summary)
        return summary


def _stamp(path: Path) -> Stamp:
    """What tells a rewritten file from the one read before: its mtime (ns) and size."""
    st = path.stat()
    return st.st_mtime_ns, st.st_size
