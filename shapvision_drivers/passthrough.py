"""What the drivers share: where the experiment configs are, and the arguments they pass through."""

import sys
from pathlib import Path

# The drivers live in the repository beside experiments/ (an editable install), and run from its root
# as the Makefile does: the configs they pass to the CLIs are relative to it.
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def split_passthrough(argv: list[str] | None) -> tuple[list[str], list[str]]:
    """A driver's own arguments, and those after ``--`` that it passes to every CLI run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        return argv, []
    return argv[: argv.index("--")], argv[argv.index("--") + 1 :]
