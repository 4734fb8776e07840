"""The command-line plumbing every ``ml-matching`` command shares."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from ml_matching.contract.commandline import call

# A command printing far more than a pipe holds, read by ``head -1`` the way the docs do.
SCRIPT = """
import argparse
from ml_matching.contract.commandline import call

def many_lines(args):
    for i in range(200_000):
        print(f"line {i}")
    return 0

raise SystemExit(call(many_lines, argparse.Namespace()))
"""


def test_a_reader_that_stops_early_is_not_an_error() -> None:
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f'"{sys.executable}" -c "$0" | head -1', SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout == "line 0\n"
    assert done.stderr == ""
    assert done.returncode == 0


def test_ctrl_c_is_one_line_and_exit_130() -> None:
    """A 40-line KeyboardInterrupt traceback after the command had cleaned up (score, fit)."""
    script = (
        "import argparse\nfrom ml_matching.contract.commandline import call\n"
        "def stopped(args):\n    raise KeyboardInterrupt\n"
        "raise SystemExit(call(stopped, argparse.Namespace()))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (130, "interrupted\n")


def test_a_path_it_cannot_use_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file where a folder goes, a folder where a file goes, no permission: each was a traceback."""
    (tmp_path / "afile").write_text("")

    def writes(args: argparse.Namespace) -> int:
        (tmp_path / "afile" / "out.json").write_text("{}")
        return 0

    assert call(writes, argparse.Namespace()) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'afile' / 'out.json'}: Not a directory\n"
