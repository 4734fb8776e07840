"""``python -m ml_matching.trainer``: ``ml-matching trainer``, the trainer service."""

from ml_matching.contract.commandline import run_one
from ml_matching.trainer.commands import TRAINER

# Guarded: each training worker (forked by multiprocessing's forkserver) imports the parent's
# __main__ as __mp_main__, as a spawned process does.
if __name__ == "__main__":
    raise SystemExit(run_one("python -m ml_matching.trainer", TRAINER))
