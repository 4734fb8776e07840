"""``python -m ml_matching.training COMMAND``: training's commands of ``ml-matching``."""

from ml_matching.contract.commandline import run
from ml_matching.training.commands import COMMANDS, DESCRIPTION

# Guarded: the trainer's worker processes are spawned, and spawning imports the parent's __main__.
if __name__ == "__main__":
    raise SystemExit(run("python -m ml_matching.training", DESCRIPTION, COMMANDS))
