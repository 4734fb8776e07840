"""What the store holds, read for the API: the versions, their sidecars (cached) and their files."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

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
        self._sidecars: dict[str, tuple[tuple[int, int], Sidecar]] = {}
        self._sidecar_hashes: dict[str, tuple[tuple[int, int], str]] = {}

    def sidecar(self, version: str) -> Sidecar:
        """The parsed sidecar of ``version`` (cached while model.json is unchanged)."""
        path = version_dir(self.root, version) / SIDECAR_FILE
        stamp = _stamp(path)
        cached = self._sidecars.get(version)
        if cached is None or cached[0] != stamp:
            cached = self._sidecars[version] = (stamp, decode_sidecar(path.read_bytes()))
        return cached[1]

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
        out = []
        for v in list_versions(self.root):
            try:
                s = self.sidecar(v)
            except (MLMatchingError, OSError) as exc:
                out.append(ModelSummary(version=v, active=v == current, error=str(exc)))
                continue
            metrics = SummaryMetrics(
                cross_validation=s.metrics.cross_validation.mean, holdout=s.metrics.holdout
            )
            out.append(
                ModelSummary(
                    version=v,
                    active=v == current,
                    timestamp=s.created_at,
                    algorithm=s.algorithm,
                    metrics=metrics,
                )
            )
        return out


def _stamp(path: Path) -> tuple[int, int]:
    """What tells a rewritten file from the one read before: its mtime (ns) and size."""
    st = path.stat()
    return st.st_mtime_ns, st.st_size
