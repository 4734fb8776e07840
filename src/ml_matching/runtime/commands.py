"""The runtime's commands: ``ml-matching serve`` (and ``python -m ml_matching.runtime``) serves the
store with uvicorn; ``ml-matching score`` scores a file of rows with one version (:mod:`.batch`).

``serve``'s settings come from the environment (``--help`` lists them). With ``ML_SERVICE_WORKERS`` > 1,
uvicorn runs that many worker processes on the one port, each building the app from the
environment; their metrics are shared through prometheus-client's multiprocess mode, in a folder
made fresh for this start (``PROMETHEUS_MULTIPROC_DIR`` when it is set, emptied first; else a
temporary folder removed at exit).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ml_matching.contract.commandline import Command, Handler, environment_epilog
from ml_matching.runtime.settings import Settings

MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
APP_FACTORY = "ml_matching.runtime.app:serving_app"


def _serve(parser: argparse.ArgumentParser) -> Handler:
    parser.epilog = environment_epilog(Settings)
    return serve


def serve(_: argparse.Namespace) -> int:
    import uvicorn  # the server is imported by the command that runs it, not by --help

    settings = Settings.from_environ(os.environ)
    many = settings.workers > 1
    with metrics_folder(settings.metrics_dir) if many else contextlib.nullcontext():
        if many:
            target: object = APP_FACTORY  # each worker imports the factory and reads the environment
        else:
            from ml_matching.runtime.app import create_app

            target = create_app(settings, freeze_gc=True)
        uvicorn.run(
            target,  # type: ignore[arg-type]
            factory=many,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            access_log=False,  # one line per request costs more than scoring it (bench/)
        )
    return 0


@contextlib.contextmanager
def metrics_folder(given: Path | None) -> Iterator[Path]:
    """A fresh folder for the workers' shared metrics, named in the environment they inherit."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        for stale in given.glob("*.db"):  # a previous start's counters must not be added to ours
            stale.unlink()
        yield given
        return
    folder = Path(tempfile.mkdtemp(prefix="ml-matching-metrics-"))
    os.environ[MULTIPROC] = str(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


SERVE = Command(
    "serve",
    "serve the artifact store over HTTP (Litestar + onnxruntime); settings from the environment",
    _serve,
    description="Serve the version ACTIVE names (or MODEL_VERSION) and follow ACTIVE; "
    "the environment variables below configure it.",
)

# --- score -----------------------------------------------------------------------------------------


def _configure_score(p: argparse.ArgumentParser) -> Handler:
    p.add_argument(
        "--model",
        type=Path,
        required=True,
        metavar="DIR/VERSION",
        help="a version folder (STORE/VERSION), or a store: the version its ACTIVE names; verified first",
    )
    p.add_argument(
        "--in",
        dest="input",
        type=Path,
        required=True,
        metavar="FILE",
        help="the rows, format by suffix: .csv (a header row), .jsonl/.ndjson (an object per line) or "
        ".parquet (needs pyarrow); columns other than the features pass through",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="the rows scored, in the format of --in: its columns, then score and confidence "
        "(as POST /predict answers); with --dask a folder of part files",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="add each feature's contribution, as columns contributions.<feature>",
    )
    p.add_argument(
        "--rejects",
        type=Path,
        metavar="FILE",
        help="the refused rows, a JSON object per line: line (1-based; a CSV's header is line 1), "
        "reason, input; when unset, OUT.rejects.jsonl",
    )
    p.add_argument(
        "--chunk-rows",
        type=int,
        default=20_000,
        metavar="N",
        help="rows read, scored and written at a time (memory stays flat); on Dask, about the rows "
        "of a partition",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="score the partitions on this Dask scheduler (tcp://HOST:8786; the dask extra); "
        "when unset, DASK_SCHEDULER_ADDRESS if it is set",
    )
    p.epilog = (
        "exit codes:\n"
        "  0  every row scored\n"
        "  3  the output is written, but some rows were refused (see --rejects)\n"
        "  2  bad input: an option, a file that cannot be read, a missing column or extra\n"
        "  1  any other failure (a version that fails verification, a full disk)\n"
        "On failure nothing is written under the names of --out and --rejects."
    )
    return _score


def _score(args: argparse.Namespace) -> int:
    from ml_matching.runtime.batch import run_score  # numpy and onnxruntime: not for --help

    return run_score(args, os.environ)


SCORE = Command(
    "score",
    "score a file of rows (CSV, JSON Lines, Parquet) with one version, a chunk at a time or on Dask",
    _configure_score,
    description="Score every row of a file with one verified version, a chunk at a time (memory stays\n"
    "flat), or on a Dask cluster with --dask. Refused rows go to the rejects file with their line\n"
    "and the reason, in the words of the HTTP API's 400.",
)
COMMANDS = (SERVE, SCORE)
