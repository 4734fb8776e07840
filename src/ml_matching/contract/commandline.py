"""Commands as every room declares them, and the one way they run and exit.

A room's ``commands`` module lists :class:`Command` objects; ``ml-matching`` (the console script)
and each room's ``python -m`` form run them with :func:`run`. Results go to stdout, progress to
stderr; bad input exits with code 2 and one line naming the problem, any other refusal with 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_matching.contract.errors import InvalidInput, MissingDependency, MLMatchingError, SettingsError
from ml_matching.contract.settings import variables

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one line of help, and what adds its arguments and returns its handler."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], Handler]
    description: str | None = None


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option; descriptions and epilogs keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # Not where it says nothing ("default: None", "default: False" of a flag) or where the
        # help already words its default ("default: 5, or the config's").
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def parser(prog: str, description: str, commands: Sequence[Command]) -> argparse.ArgumentParser:
    """``prog COMMAND ...`` with one subparser per command."""
    top = argparse.ArgumentParser(prog=prog, description=description, formatter_class=_Formatter)
    sub = top.add_subparsers(required=True, metavar="COMMAND", title="commands")
    for command in commands:
        p = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            formatter_class=_Formatter,
        )
        p.set_defaults(handler=command.configure(p))
    return top


def run(prog: str, description: str, commands: Sequence[Command], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's) against ``commands`` and run the one named."""
    args = parser(prog, description, commands).parse_args(argv)
    return call(args.handler, args)


def run_one(prog: str, command: Command, argv: Sequence[str] | None = None) -> int:
    """A command that is the whole program (``python -m ml_matching.runtime``): no subcommand name."""
    p = argparse.ArgumentParser(
        prog=prog, description=command.description or command.help, formatter_class=_Formatter
    )
    handler = command.configure(p)
    return call(handler, p.parse_args(argv))


def call(handler: Handler, args: argparse.Namespace) -> int:
    """Run ``handler``; an error ml-matching raised on purpose becomes one line and an exit code."""
    try:
        return int(handler(args))
    except BrokenPipeError:
        # The reader stopped early (``| head -1``): what it wanted was printed. Point stdout at
        # /dev/null so the flush at exit does not raise again (the Python docs' recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (InvalidInput, SettingsError, MissingDependency) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MLMatchingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: the command's own cleanup ran on the way out
        print("interrupted", file=sys.stderr)
        return 130  # as a shell reports a process ended by SIGINT
    except OSError as exc:  # a path it could not use: a file where a folder goes, no permission, …
        print(f"error: {os_problem(exc)}", file=sys.stderr)
        return 1


def suffix_shown(path: Path) -> str:
    """A path's suffix as an error names it: the format of a file is chosen by it."""
    return f"`{path.suffix}`" if path.suffix else "no suffix"


def os_problem(exc: OSError) -> str:
    """An operating-system error as one line naming the path(s) and what was wrong with them."""
    paths = " → ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    what = exc.strerror or str(exc)
    return f"{paths}: {what}" if paths else what


def environment_epilog(settings: type[Any]) -> str:
    """The environment variables a settings class reads, for a command's ``--help``."""
    lines = ["environment variables (unset: the default in brackets):"]
    for variable, default in variables(settings):
        shown = "unset" if default is None or default == () else str(default)
        lines.append(f"  {variable.name:<26} {variable.doc} [{shown}]")
    return "\n".join(lines)
