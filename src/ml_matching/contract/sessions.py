"""onnxruntime sessions as every part of ml-matching makes them, from bytes a sidecar pins."""

from __future__ import annotations

import ctypes
import functools
import hashlib
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

from ml_matching.contract.errors import ArtifactCorrupt
from ml_matching.contract.sidecar import FileInfo


def session_options(threads: int) -> ort.SessionOptions:
    """Sequential execution on ``threads`` intra-op threads, no spinning when idle."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn a core between requests of a service that is mostly idle.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def new_session(data: bytes, threads: int, check: str, name: str) -> ort.InferenceSession:
    """A CPU session of the graph ``data``; a graph onnxruntime refuses raises ArtifactCorrupt(check)."""
    try:
        return ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for a bad graph
        raise ArtifactCorrupt(check, f"onnxruntime cannot load {name}: {exc}") from None


def release_freed_heap() -> None:
    """Give back to the system the C heap that building sessions freed (glibc's ``malloc_trim``).

    onnxruntime parses a graph into buffers it frees once the session is built; glibc keeps those
    pages mapped, 8 MB of resident memory for the default forest (``bench/memory.py``). Called after
    a load, which is rare, never on the scoring path. A no-op where the C library has no such call.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:  # the process's own symbols, the C library's among them
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None


def read_pinned(folder: Path, name: str, sha256: str, size: int, check: str) -> bytes:
    """The bytes of ``folder/name``, which must have the sha256 and size the sidecar pins."""
    try:
        data = (folder / name).read_bytes()
    except OSError as exc:
        raise ArtifactCorrupt(check, f"cannot read {name}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256 or len(data) != size:
        raise ArtifactCorrupt(
            check, f"{name} has sha256 {digest} ({len(data)} bytes), sidecar expects {sha256} ({size} bytes)"
        )
    return data


def read_file(folder: Path, name: str, pinned: FileInfo, check: str) -> bytes:
    """A file of the sidecar's ``files``, checked against its pin."""
    return read_pinned(folder, name, pinned.sha256, pinned.bytes, check)
