"""The command-line plumbing every ``ml-matching`` command shares."""

from __future__ import annotations

import subprocess
import sys

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
