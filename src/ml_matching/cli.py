"""``ml-matching``: one command, with a subcommand per job, each defined in the room that does it.

Only the room of the command asked for is imported, so ``ml-matching serve`` never imports
scikit-learn and ``ml-matching --help`` works in a runtime-only install. Each room's ``commands``
module declares its commands; this module only knows where they live.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ml_matching.contract.commandline import Command, run

DESCRIPTION = (
    "Predict whether an influencer-brand collaboration will succeed: train, serve, and learn from "
    "outcomes. `ml-matching COMMAND --help` describes each command."
)
#: Each command, the room that defines it and its line of help (the room's own, which a test keeps
#: equal), in the order --help lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": (
        "runtime",
        "serve the artifact store over HTTP (Litestar + onnxruntime); settings from the environment",
    ),
    "score": (
        "runtime",
        "score a file of rows (CSV, JSON Lines, Parquet) with one version, a chunk at a time or on Dask",
    ),
    "trainer": (
        "trainer",
        "run the trainer service (outcomes, retraining, promotion); settings from the environment",
    ),
    "synth": ("training", "write synthetic outcomes (the original service's /train JSON)"),
    "fit": ("training", "train, evaluate, export and publish versions"),
    "gate": ("trainer", "should VERSION replace another? exit 0 promote, 1 refuse, 2 bad input"),
    "experiment": (
        "trainer",
        "start, show, steer, report and replay experiments on a running trainer",
    ),
    "holdout": ("trainer", "start, show and stop the long-lived holdout on a running trainer"),
    "list": ("training", "list the versions in a store"),
    "verify": ("training", "re-check a version: sha256, ONNX load, golden rows, every pinned file"),
    "card": (
        "training",
        "rebuild a version's model card (card.md, card.html, the SVG plots) from its folder",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    name = next((a for a in args if not a.startswith("-")), None)
    if name in COMMANDS:
        return run("ml-matching", DESCRIPTION, [_command(name)], args)
    # No command, or an unknown one: argparse lists the commands (or names the bad one).
    return run("ml-matching", DESCRIPTION, [_listed(n, h) for n, (_, h) in COMMANDS.items()], args)


def _command(name: str) -> Command:
    room = COMMANDS[name][0]
    module = importlib.import_module(f"ml_matching.{room}.commands")
    commands: tuple[Command, ...] = module.COMMANDS
    return next(c for c in commands if c.name == name)


def _listed(name: str, help: str) -> Command:
    """A command as the overview lists it; main() loads a named command from its room instead."""
    return Command(name, help, lambda _: _not_loaded)


def _not_loaded(_: argparse.Namespace) -> int:
    raise AssertionError("a listed command is never run")
