"""A version's explainer graph (``explain.onnx``), verified before it answers, loaded when needed.

Its checks, each the ``check`` of the :class:`ArtifactCorrupt` it raises: ``explain`` (the file
has the sha256 and size the sidecar pins, onnxruntime loads it, it takes the model's input and
gives one contribution per feature) and ``golden-explanations`` (the sidecar's golden rows'
contributions reproduce within 1e-5).

Its session costs about as much memory as the model's (30 MB for the default forest), and most
requests never ask for an explanation: ``lazy`` (the runtime's default, ``EXPLAIN_LOAD``) builds
and checks it at the first explanation; ``eager`` at load, so a version whose explainer fails is
refused whole (what ``verify`` and training want); ``off`` never. A failed check is remembered:
the files of a version never change, so it is not tried again.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from ml_matching.contract.compare import GOLDEN_TOLERANCE, compare
from ml_matching.contract.errors import ArtifactCorrupt
from ml_matching.contract.sessions import new_session, read_file, release_freed_heap
from ml_matching.contract.sidecar import Explanation, Sidecar

ExplainLoad = Literal["lazy", "eager", "off"]
EXPLAIN_LOADS: tuple[ExplainLoad, ...] = ("lazy", "eager", "off")


class Explainer:
    """The explainer graph of one version; thread-safe, built once."""

    def __init__(self, folder: Path, sidecar: Sidecar, explanation: Explanation, threads: int) -> None:
        self.folder = folder
        self.sidecar = sidecar
        self.explanation = explanation
        self.threads = threads
        self._session: ort.InferenceSession | None = None
        self._refused: tuple[str, str] | None = None  # the failed check and its message
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> ort.InferenceSession:
        """The verified session, built now if it was not (raises the ArtifactCorrupt that refused it)."""
        session = self._session
        if session is not None:
            return session
        with self._lock:
            if self._session is None:
                if self._refused is not None:
                    # A new error each time: one error raised again keeps every raise's frames
                    # (and the rows in them) in its traceback, for as long as the version serves.
                    raise ArtifactCorrupt(*self._refused)
                try:
                    self._session = self._verified()
                except ArtifactCorrupt as exc:
                    if (self.folder / self.explanation.file).is_file():
                        self._refused = exc.check, exc.detail  # it failed its checks: refused for good
                    raise  # it could not be read (its folder moved away): read again next time
                finally:
                    release_freed_heap()
            return self._session

    def contributions(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Each feature's contribution for rows ``x`` (``[n, features]``)."""
        (out,) = self.load().run([self.explanation.output], {self.sidecar.onnx.input_name: x})
        return out  # type: ignore[no-any-return]  # onnxruntime is untyped

    def _verified(self) -> ort.InferenceSession:
        name = self.explanation.file
        pinned = self.sidecar.files.get(name)
        if pinned is None:
            raise ArtifactCorrupt("explain", f"the sidecar's files do not pin {name}")
        session = new_session(read_file(self.folder, name, pinned, "explain"), self.threads, "explain", name)
        _check_signature(session, self.sidecar, self.explanation)
        _check_golden(session, self.sidecar, self.explanation)
        return session


def _check_signature(session: ort.InferenceSession, sidecar: Sidecar, explanation: Explanation) -> None:
    inputs = [i.name for i in session.get_inputs()]
    outputs = {o.name: o.shape for o in session.get_outputs()}
    n = len(sidecar.features)
    if inputs != [sidecar.onnx.input_name] or outputs.get(explanation.output, [None])[-1] != n:
        raise ArtifactCorrupt(
            "explain",
            f"{explanation.file} takes {inputs} and gives {outputs}: expected `{sidecar.onnx.input_name}` "
            f"and `{explanation.output}` with {n} columns",
        )


def _check_golden(session: ort.InferenceSession, sidecar: Sidecar, explanation: Explanation) -> float:
    """Re-explain the golden rows; raise naming the worst value beyond :data:`GOLDEN_TOLERANCE`."""
    golden = sidecar.golden_rows
    if len(explanation.golden_contributions) != len(golden):
        raise ArtifactCorrupt(
            "golden-explanations",
            f"{len(explanation.golden_contributions)} golden contributions for {len(golden)} golden rows",
        )
    names = [f.name for f in sidecar.features]
    x = np.array([[row.features[n] for n in names] for row in golden], dtype=np.float32)
    (got,) = session.run([explanation.output], {sidecar.onnx.input_name: x})
    result = compare(explanation.golden_contributions, got)
    if not result.within(GOLDEN_TOLERANCE):
        row, feature = divmod(result.worst_row, len(names))
        raise ArtifactCorrupt(
            "golden-explanations",
            f"golden row {row}, feature `{names[feature]}`: expected contribution {result.expected:.8f}, "
            f"onnxruntime gives {result.got:.8f} (tolerance {GOLDEN_TOLERANCE:g})",
        )
    return result.max_abs_diff
