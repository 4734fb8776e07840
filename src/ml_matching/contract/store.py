"""The artifact store layout, shared by training (writer) and runtime (reader).

::

    <root>/
      20261126_143000/      one folder per version, immutable once renamed into place
        model.onnx
        model.json          the sidecar
      ACTIVE                the version served by default, replaced atomically
      ACTIVE.log            every version ever made ACTIVE, one JSON line each, oldest first
      .tmp-<pid>-<where>-…  a version or file being written by process <pid>; never read

A writer killed mid-way leaves a ``.tmp-<pid>-<where>-…`` entry behind; readers ignore it, and the
next writer removes those whose process is gone (:func:`clean_leftovers`). ``where`` names the host
and PID namespace the pid belongs to: the entry of a writer in another container sharing the store
is removed only once it has been left untouched for an hour.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

import msgspec

from ml_matching.contract.errors import ArtifactCorrupt, InvalidInput, StorageFull, VersionNotFound
from ml_matching.contract.sidecar import FileInfo, Sidecar, encode_sidecar

MODEL_FILE = "model.onnx"
SIDECAR_FILE = "model.json"
ACTIVE_FILE = "ACTIVE"
HISTORY_FILE = "ACTIVE.log"
_VERSION_RE = re.compile(r"\d{8}_\d{6}(?:-[1-9]\d{0,5})?", re.ASCII)  # ASCII: \d is every script's digits
_TMP_PREFIX = ".tmp-"
#: A writer's temporary entry: ``.tmp-<pid>-<where>-…``, ``where`` naming the host and PID namespace
#: the pid belongs to (entries of earlier releases have no ``where``).
_TMP_RE = re.compile(r"\.tmp-(\d+)-(?:([0-9a-f]{8})-)?.*", re.ASCII)
#: A temporary entry whose writer cannot be asked whether it lives (another container or host shares
#: the store, where its pid means another process) is removed once untouched this long: a version
#: is written in seconds.
FOREIGN_LEFTOVER_SECONDS = 3600.0
_DIR_MODE = 0o755
_FILE_MODE = 0o644


T = TypeVar("T")


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
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{ACTIVE_FILE} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return check_version_name(text)


def write_active(root: Path, version: str) -> None:
    """Point ACTIVE at ``version``, atomically (write a temporary file, then rename it), and add it
    to ``ACTIVE.log``, the history a runtime falls back on when ACTIVE's version does not verify."""
    check_version_name(version)
    with writing(root, f"ACTIVE -> {version}"):
        atomic_write(root / ACTIVE_FILE, (version + "\n").encode())
        line = json.dumps({"version": version, "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
        with open(root / HISTORY_FILE, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def read_history(root: Path) -> list[str]:
    """The versions ever made ACTIVE, oldest first (lines that are not a version are skipped)."""
    try:
        lines = (root / HISTORY_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(check_version_name(json.loads(line)["version"]))
        except (ValueError, KeyError, TypeError, InvalidInput):
            continue  # a line cut short by a crash
    return out


def clean_leftovers(root: Path) -> list[str]:
    """Remove the temporary entries of writers that are gone (killed mid-write); return their names."""
    if not root.is_dir():
        return []
    removed = []
    for entry in root.iterdir():
        match = _TMP_RE.fullmatch(entry.name)
        if match is None or not _writer_gone(entry, int(match.group(1)), match.group(2)):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    return sorted(removed)


def _writer_gone(entry: Path, pid: int, where: str | None) -> bool:
    """Whether the writer of ``entry`` is gone: its pid, when it is one of this PID namespace, else
    how long the entry has been left untouched."""
    if where == writer_place():
        return not _alive(pid)
    try:
        return entry.lstat().st_mtime < time.time() - FOREIGN_LEFTOVER_SECONDS
    except FileNotFoundError:  # its writer renamed it meanwhile
        return False


@functools.cache
def writer_place() -> str:
    """This process's host and PID namespace, hashed: only there does a writer's pid name it (a
    container sharing the store has other pids, and may reuse this one)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:8]


def temp_prefix(pid: int | None = None) -> str:
    """The start of the name of a temporary entry this process (or ``pid``, here) writes."""
    return f"{_TMP_PREFIX}{os.getpid() if pid is None else pid}-{writer_place()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@contextlib.contextmanager
def writing(root: Path, what: str) -> Iterator[None]:
    """Turn a failed write of the store (disk full, read-only) into StorageFull naming it."""
    try:
        yield
    except OSError as exc:
        raise StorageFull(f"{root}: cannot write {what}: {exc.strerror or exc}") from exc


def check_writable(root: Path, what: str) -> None:
    """Raise InvalidInput naming ``what`` (the option or variable that gave the store) unless a file
    can be written in ``root``, or, while it is missing, in the folder it would be made in: before an
    hour of work, not after. Nothing is left behind."""
    there = root
    while not there.exists() and there.parent != there:
        there = there.parent
    if not there.is_dir():
        raise InvalidInput(f"{what}={root}: cannot write there ({there} is a file, not a folder)")
    try:
        tempfile.TemporaryFile(dir=there).close()
    except OSError as exc:
        raise InvalidInput(f"{what}={root}: cannot write there ({exc.strerror or exc})") from None


def atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix())
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


def read_published(root: Path, name: str, decoder: msgspec.json.Decoder[T]) -> T | None:
    """The JSON file ``name`` the trainer publishes to every runtime (``EXPERIMENT``, ``HOLDOUT``),
    or None when there is none; raises ArtifactCorrupt when it cannot be read."""
    try:
        data = (root / name).read_bytes()
    except FileNotFoundError:
        return None
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ArtifactCorrupt(name.lower(), f"{name} cannot be read: {exc}") from None


def write_published(root: Path, name: str, content: msgspec.Struct | None) -> None:
    """Publish ``content`` as ``name``, atomically (None: remove the file, there is none any more)."""
    with writing(root, name):
        if content is None:
            (root / name).unlink(missing_ok=True)
        else:
            atomic_write(root / name, msgspec.json.format(msgspec.json.encode(content)) + b"\n")


class Publication:
    """The file ``name`` a writing transaction publishes, put back as it was if the transaction
    fails after publishing it (its commit included), so it never runs ahead of the database.

    Call it with the write, inside the transaction: the file is read just before the first write,
    under the transaction's lock, so the copy put back is what the last committed writer left.
    Nothing is put back when the transaction failed before publishing (a refusal)."""

    def __init__(self, root: Path, name: str) -> None:
        self.path = root / name
        self._before: list[bytes | None] = []  # empty until the first write

    def __call__(self, write: Callable[[], None]) -> None:
        if not self._before:
            try:
                self._before.append(self.path.read_bytes())
            except FileNotFoundError:
                self._before.append(None)
        write()

    def restore(self) -> None:
        """Put the file back as it was before the first write (nothing if there was none)."""
        if not self._before:
            return
        before = self._before[0]
        with contextlib.suppress(OSError):  # the disk may still be full: the first error is the one told
            if before is None:
                self.path.unlink(missing_ok=True)
            elif not self.path.is_file() or self.path.read_bytes() != before:
                atomic_write(self.path, before)


@contextlib.contextmanager
def publication(root: Path, name: str) -> Iterator[Publication]:
    """Around a writing transaction (outside it, so that a failed commit is seen): the
    :class:`Publication` of ``name``, restored when the block raises."""
    published = Publication(root, name)
    try:
        yield published
    except BaseException:
        published.restore()
        raise


def amend_version(folder: Path, sidecar: Sidecar, files: Mapping[str, bytes]) -> None:
    """Add or replace ``files`` of a published version, then its sidecar.

    The one change a published version takes: a redrawn model card (its model and golden rows never
    change). Each file goes through a temporary file renamed into place, the sidecar last, so a
    reader sees either the old sidecar or the new one with every file it pins.
    """
    with writing(folder.parent, f"the files of {folder.name}"):
        for name, data in files.items():
            atomic_write(folder / name, data)
        atomic_write(folder / SIDECAR_FILE, encode_sidecar(sidecar))


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
    with writing(root, f"version {stamp}"):
        root.mkdir(parents=True, exist_ok=True)
        for name in _names(stamp):
            if (root / name).exists():
                continue
            named = sidecar if sidecar.version == name else msgspec.structs.replace(sidecar, version=name)
            if _rename_into_place(root, name, {**files, SIDECAR_FILE: encode_sidecar(named)}):
                return named
    raise RuntimeError(f"no free version name for {stamp} in {root}")


def _names(stamp: str) -> Iterator[str]:
    yield stamp
    for n in range(2, 1000):
        yield f"{stamp}-{n}"


MEDIA_TYPES = {
    "json": "application/json",
    "onnx": "application/octet-stream",  # ONNX has no registered media type
    "md": "text/markdown",
    "html": "text/html",
    "svg": "image/svg+xml",
}


def media_type(name: str) -> str:
    """The media type a version's file is served with, by its suffix."""
    return MEDIA_TYPES.get(name.rpartition(".")[2], "application/octet-stream")


def pin(name: str, data: bytes) -> FileInfo:
    """The sidecar's record of one of a version's files: its hash, size and media type."""
    return FileInfo(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), media_type=media_type(name))


def free_version_name(root: Path, version: str) -> str:
    """The name :func:`publish_version` would give ``version`` now (a writer may take it first)."""
    stamp = check_version_name(version).partition("-")[0]
    return next(name for name in _names(stamp) if not (root / name).exists())


def _rename_into_place(root: Path, name: str, files: Mapping[str, bytes]) -> bool:
    """Write ``files`` to a temporary folder and rename it to ``root/name``; False if the name was taken."""
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=temp_prefix()))
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
