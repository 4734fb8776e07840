"""The artifact store layout, shared by training (writer) and runtime (reader).

::

    <root>/
      20261126_143000/      one folder per version, immutable once renamed into place
        model.onnx
        model.json          the sidecar
      ACTIVE                the version served by default, replaced atomically
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import msgspec

from runtime.artifact._sidecar import Sidecar, encode_sidecar
from runtime.errors import InvalidInput, VersionNotFound

MODEL_FILE = "model.onnx"
SIDECAR_FILE = "model.json"
ACTIVE_FILE = "ACTIVE"
_VERSION_RE = re.compile(r"\d{8}_\d{6}(?:-[1-9]\d{0,5})?")
_TMP_PREFIX = ".tmp-"
_DIR_MODE = 0o755
_FILE_MODE = 0o644


def check_version_name(version: str) -> str:
    """Return ``version`` if it is a plain version name, else raise InvalidInput.

    Only ``YYYYMMDD_HHMMSS`` with an optional ``-N`` suffix passes, so no path can escape the store.
    """
    if not _VERSION_RE.fullmatch(version):
        raise InvalidInput(
            f"version {version!r} is not a version name (expected YYYYMMDD_HHMMSS or YYYYMMDD_HHMMSS-N)"
        )
    return version


def version_dir(root: Path, version: str) -> Path:
    """The folder of an existing version; raises VersionNotFound when there is none."""
    path = root / check_version_name(version)
    if not (path / SIDECAR_FILE).is_file():
        raise VersionNotFound(f"version {version} not found in {root}")
    return path


def list_versions(root: Path) -> list[str]:
    """Names of the complete versions in the store, oldest first."""
    if not root.is_dir():
        return []
    names = (p.name for p in root.iterdir() if _VERSION_RE.fullmatch(p.name))
    return sorted((n for n in names if (root / n / SIDECAR_FILE).is_file()), key=_sort_key)


def _sort_key(version: str) -> tuple[str, int]:
    stamp, _, suffix = version.partition("-")
    return stamp, int(suffix or 1)


def read_active(root: Path) -> str | None:
    """The version named in ACTIVE, or None when there is no such file."""
    try:
        text = (root / ACTIVE_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return check_version_name(text)


def write_active(root: Path, version: str) -> None:
    """Point ACTIVE at ``version``, atomically (write a temporary file, then rename it)."""
    check_version_name(version)
    _atomic_write(root / ACTIVE_FILE, (version + "\n").encode())


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes it private; readers may run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def version_stamp(now: dt.datetime | None = None) -> str:
    """The version name for a training finished at ``now`` (UTC), without collision suffix."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).strftime("%Y%m%d_%H%M%S")


def publish_version(root: Path, sidecar: Sidecar, files: Mapping[str, bytes]) -> Sidecar:
    """Write a new version, its ``files`` and its sidecar; return the sidecar as published.

    Everything goes to a temporary folder in the store that is then renamed into place, so a reader
    never sees half a version. An existing version is never overwritten: when ``sidecar.version`` is
    taken, the next free ``-N`` suffix is used and the sidecar's ``version`` (the one field
    publishing may change) follows it.
    """
    if SIDECAR_FILE in files:
        raise ValueError(f"{SIDECAR_FILE} is written from the sidecar, not passed as a file")
    stamp = check_version_name(sidecar.version).partition("-")[0]
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        name = stamp if n == 1 else f"{stamp}-{n}"
        if (root / name).exists():
            continue
        named = sidecar if sidecar.version == name else msgspec.structs.replace(sidecar, version=name)
        if _rename_into_place(root, name, {**files, SIDECAR_FILE: encode_sidecar(named)}):
            return named
    raise RuntimeError(f"no free version name for {stamp} in {root}")


def _rename_into_place(root: Path, name: str, files: Mapping[str, bytes]) -> bool:
    """Write ``files`` to a temporary folder and rename it to ``root/name``; False if the name was taken."""
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=_TMP_PREFIX))
    try:
        tmp.chmod(_DIR_MODE)  # mkdtemp makes it private; the runtime may run as another user
        _write_files(tmp, files)
        # rename() onto an existing non-empty folder fails: a version written meanwhile stays.
        os.rename(tmp, root / name)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if (root / name).exists():
            return False
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True


def _write_files(folder: Path, files: Mapping[str, bytes]) -> None:
    for name, data in files.items():
        with open(folder / name, "wb") as fh:
            os.fchmod(fh.fileno(), _FILE_MODE)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
