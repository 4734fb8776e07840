"""``ml-matching score``: score a file of rows with one verified version, a chunk at a time.

Memory stays flat whatever the file's size: one chunk (``--chunk-rows``) is in memory at a time.
The scores are the runtime's: :meth:`Scorer.score` gives each row's probability and confidence,
``score`` is 100·p as ``POST /predict`` answers, and ``--explain`` adds the explainer's
contributions as ``contributions.<feature>`` columns (``baseValue`` + their sum is the model's
output in the explanation's scale, as with ``?explain=true``).

The output and the rejects file are written to temporary files beside them and renamed into place
at the end, so a failed run leaves nothing under either name. The rejects file is always written
(empty when every row scored), so no stale one from an earlier run stays beside a new output.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import msgspec
import numpy as np

from ml_matching.contract import (
    ACTIVE_FILE,
    SIDECAR_FILE,
    InvalidInput,
    LoadedModel,
    MLMatchingError,
    load_dir,
    read_active,
    version_dir,
)
from ml_matching.contract.scheduler import ENVIRONMENT, scheduler_address
from ml_matching.runtime.files import (
    Chunk,
    CsvLayout,
    CsvWriter,
    Format,
    JsonlWriter,
    Reject,
    commit,
    file_format,
    read_csv,
    read_jsonl,
    replacing,
)
from ml_matching.runtime.parquet import ParquetWriter, parquet_schema, read_parquet
from ml_matching.runtime.rows import Floats
from ml_matching.runtime.scoring import Scorer

#: The exit code when the output was written but some rows were refused (see the rejects file).
SOME_REJECTED = 3
DEFAULT_CHUNK_ROWS = 20_000
CONTRIBUTION = "contributions."


@dataclass(frozen=True)
class Job:
    """What ``score`` was asked to do."""

    input: Path
    out: Path
    rejects: Path
    explain: bool = False
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    @property
    def format(self) -> Format:
        return file_format(self.input, "--in")


@dataclass
class Summary:
    """What a run did: rows scored and refused, and how long it took."""

    scored: int = 0
    rejected: int = 0
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return (self.scored + self.rejected) / self.seconds if self.seconds > 0 else 0.0


def model_folder(path: Path) -> Path:
    """The version folder ``--model`` names: a version folder itself, or a store (its ACTIVE version)."""
    if (path / SIDECAR_FILE).is_file():
        return path
    if (path / ACTIVE_FILE).is_file():
        active = read_active(path)
        if active is not None:
            return version_dir(path, active)
    raise InvalidInput(
        f"--model {path}: not a version folder (no {SIDECAR_FILE}) nor a store with an {ACTIVE_FILE} file"
    )


def open_model(path: Path, explain: bool) -> LoadedModel:
    """Load and verify the version ``--model`` names (its explainer too with ``explain``).

    Raises
    ------
    InvalidInput
        ``path`` names no version, or ``explain`` for a version without an explainer.
    ArtifactCorrupt
        The version fails verification.
    """
    folder = model_folder(path)
    model = load_dir(folder, explain="eager" if explain else "off")
    if explain and model.sidecar.explanation is None:
        raise InvalidInput(
            f"--explain: version {model.version} has no explainer (it was trained before explanations "
            "existed): retrain it, or score without --explain"
        )
    return model


def added_columns(model: LoadedModel, explain: bool) -> list[str]:
    """The columns scoring appends to each row, in order."""
    extra = [CONTRIBUTION + n for n in model.feature_set.names] if explain else []
    return ["score", "confidence", *extra]


def score_rows(scorer: Scorer, x: Floats, explain: bool) -> dict[str, Floats]:
    """The new columns for rows ``x``: the numbers ``POST /predict`` answers for the same rows."""
    names = added_columns(scorer.model, explain)
    if len(x) == 0:
        return {n: np.empty(0) for n in names}
    x32 = x.astype(np.float32)
    p, confidence = scorer.score(x32)
    out = {"score": 100.0 * p, "confidence": confidence}
    if explain:
        contributions = scorer.model.contributions(x32).astype(np.float64)
        out.update({n: contributions[:, j] for j, n in enumerate(names[2:])})
    return out


class Progress:
    """Progress lines on stderr, at most one per ``every`` seconds: rows/s and the time left."""

    def __init__(
        self, stream: TextIO | None = None, every: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.clock = clock
        self.started = clock()
        self._last = self.started

    def update(self, rows: int, rejected: int, done: float) -> None:
        now = self.clock()
        if now - self._last < self.every:
            return
        self._last = now
        elapsed = now - self.started
        left = f", ETA {_duration(elapsed * (1 - done) / done)}" if done > 0 else ""
        speed = f"{rows / elapsed:,.0f} rows/s" if elapsed > 0 else "-"
        self.line(f"score: {rows:,} rows ({rejected:,} rejected), {speed}, {done:.0%} read{left}")

    def line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


#: The signals that end a run (a container stopping, Ctrl-C).
HELD = (signal.SIGTERM, signal.SIGINT)


@dataclass
class _Outputs:
    """The output and rejects files being written (temporary names until :meth:`commit`)."""

    writer: Any
    rejects: Any
    staged: list[tuple[Path, Path]] = field(default_factory=list)
    _encode: Callable[[Any], bytes] = field(default_factory=lambda: msgspec.json.Encoder(enc_hook=str).encode)

    def reject(self, rejects: list[Reject]) -> None:
        self.rejects.write(b"".join(self._encode(r) + b"\n" for r in rejects))


@contextlib.contextmanager
def _outputs(job: Job, model: LoadedModel, added: list[str]) -> Iterator[_Outputs]:
    fmt = job.format
    with contextlib.ExitStack() as stack:
        with _signals_held():  # a kill now waits until both temporary files are the stack's to remove
            out, out_tmp = stack.enter_context(replacing(job.out))
            rejects, rejects_tmp = stack.enter_context(replacing(job.rejects))
        if fmt == "csv":
            writer: Any = CsvWriter(out, CsvLayout.read(job.input, model.feature_set, added).header, added)
        elif fmt == "jsonl":
            writer = JsonlWriter(out, added)
        else:
            writer = ParquetWriter(out, parquet_schema(job.input, model.feature_set, added), added)
            stack.callback(writer.close)  # before the file is flushed and renamed
        outputs = _Outputs(writer, rejects, [(out_tmp, job.out), (rejects_tmp, job.rejects)])
        yield outputs
    try:
        for tmp, path in outputs.staged:
            commit(tmp, path)
    except BaseException:
        for tmp, _ in outputs.staged:  # none is left behind (those already renamed are gone)
            tmp.unlink(missing_ok=True)
        raise


def check_job(job: Job) -> None:
    """Refuse a job whose files clash or whose output format differs from its input's."""
    if job.chunk_rows < 1:
        raise InvalidInput(f"--chunk-rows must be at least 1, got {job.chunk_rows}")
    if not job.input.is_file():
        raise InvalidInput(f"--in {job.input}: no such file")
    fmt = job.format
    if file_format(job.out, "--out") != fmt:
        raise InvalidInput(
            f"--out {job.out}: write the same format as --in ({fmt}), e.g. {job.out.stem}{job.input.suffix}"
        )
    paths = [p.resolve() for p in (job.input, job.out, job.rejects)]
    if len(set(paths)) < 3:
        raise InvalidInput("--in, --out and --rejects must be three different files")
    for flag, path in (("--out", job.out), ("--rejects", job.rejects)):
        if path.is_dir():  # found before scoring, not after: a --dask run writes a folder there
            raise InvalidInput(
                f"{flag} {path} is a folder (a --dask run's output?): name a file, or remove it"
            )


def score_file(model: LoadedModel, job: Job, progress: Progress) -> Summary:
    """Score every row of ``job.input`` into ``job.out``; refused rows go to ``job.rejects``."""
    check_job(job)
    scorer = Scorer(model, max_batch_rows=job.chunk_rows)
    added = added_columns(model, job.explain)
    summary = Summary()
    with _outputs(job, model, added) as outputs:
        read = {"csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet}[job.format]
        chunks: Iterator[Chunk] = read(job.input, model.feature_set, job.chunk_rows, added)
        for chunk in chunks:
            outputs.writer.write(chunk.kept, score_rows(scorer, chunk.x, job.explain))
            outputs.reject(chunk.rejects)
            summary.scored += len(chunk.x)
            summary.rejected += len(chunk.rejects)
            progress.update(summary.scored + summary.rejected, summary.rejected, chunk.done)
    summary.seconds = progress.clock() - progress.started
    return summary


def _address(flag: str | None, environ: Mapping[str, str]) -> str | None:
    """The scheduler of --dask, else of DASK_SCHEDULER_ADDRESS; checked as every command checks it."""
    given, where = (flag, "--dask") if flag else (environ.get(ENVIRONMENT) or None, ENVIRONMENT)
    if given is None:
        return None
    try:
        return scheduler_address(given)
    except ValueError as exc:
        raise InvalidInput(f"{where}: {exc}") from None


def run_score(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """``ml-matching score``: 0 when every row scored, :data:`SOME_REJECTED` when some were refused."""
    out = args.out
    rejects = args.rejects or out.with_name(out.name + ".rejects.jsonl")
    job = Job(args.input, out, rejects, args.explain, args.chunk_rows)
    address = _address(args.dask, environ)
    try:
        with _stopped_cleanly():
            summary = _score(args, job, address)
    except OSError as exc:  # the disk filled, a file went away: one line, exit 1, nothing left behind
        where = f" ({exc.filename})" if exc.filename else ""
        raise MLMatchingError(f"score failed: {exc.strerror or exc}{where}") from exc
    progress = Progress()
    progress.line(
        f"scored {summary.scored:,} rows, rejected {summary.rejected:,}, in {summary.seconds:.1f} s "
        f"({summary.rows_per_second:,.0f} rows/s): {job.out}; rejects: {job.rejects}"
    )
    return SOME_REJECTED if summary.rejected else 0


def _score(args: argparse.Namespace, job: Job, address: str | None) -> Summary:
    if address is None:
        check_job(job)
        return score_file(open_model(args.model, args.explain), job, Progress())
    from ml_matching.runtime.batch_dask import check_dask_job, score_on_dask  # dask: only here

    check_dask_job(job)
    folder = model_folder(args.model)
    return score_on_dask(address, folder, open_model(folder, args.explain), job, Progress())


@contextlib.contextmanager
def _stopped_cleanly() -> Iterator[None]:
    """SIGTERM (``kill``, a container stopping) ends the command as Ctrl-C does: through the code
    that removes its temporary files, with exit code 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGTERM and SIGINT wait at the door of the block: acted on when it ends, never between a
    temporary file being made and the code that removes it being registered.

    Deferred by handlers of the block's own, not masked: a signal sent to the process reaches any of
    its threads that does not mask it (onnxruntime's, numpy's), and Python then runs the handler in
    the main thread, masked or not: with a mask, a kill that reached another thread left a temporary
    file behind (once in CI). Outside the main thread no handler interrupts the block.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _: arrived.append(signum)) for s in HELD}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for signum in arrived:  # again, to the handlers now in place (SystemExit, KeyboardInterrupt)
            signal.raise_signal(signum)


def _exit(signum: int, _: FrameType | None) -> None:
    raise SystemExit(128 + signum)
