"""``python -m ml_matching.trainer``: ``ml-matching trainer``, the trainer service."""

from ml_matching.contract.commandline import run_one
from ml_matching.trainer.commands import TRAINER

# Guarded, as a program's main module must be where multiprocessing starts processes: a training
# worker runs the trainer's main script again as __mp_main__ when it was started from one (the
# `ml-matching` console script; not this module under `python -m`).
if __name__ == "__main__":
    raise SystemExit(run_one("python -m ml_matching.trainer", TRAINER))
