"""``python -m ml_matching.trainer``: ``ml-matching trainer``, the trainer service."""

from ml_matching.contract.commandline import run_one
from ml_matching.trainer.commands import TRAINER

# Guarded: the trainer's worker processes are spawned, and spawning imports the parent's __main__.
if __name__ == "__main__":
    raise SystemExit(run_one("python -m ml_matching.trainer", TRAINER))
