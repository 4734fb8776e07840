"""``python -m ml_matching.runtime``: ``ml-matching serve``."""

from ml_matching.contract.commandline import run_one
from ml_matching.runtime.commands import SERVE

if __name__ == "__main__":
    raise SystemExit(run_one("python -m ml_matching.runtime", SERVE))
