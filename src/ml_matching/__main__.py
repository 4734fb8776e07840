"""``python -m ml_matching``: the ``ml-matching`` command."""

from ml_matching.cli import main

# Guarded: the trainer's worker processes are spawned, and spawning imports the parent's __main__.
if __name__ == "__main__":
    raise SystemExit(main())
