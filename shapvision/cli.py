"""Console entry point ``shapvision``."""

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print(
        "shapvision: Shapley-value explanations of vision models.\n"
        "The training commands (fit / validate / test / predict) are not available yet;\n"
        "the Shapley estimation core is importable as `shapvision.shapley`."
    )
    return 0 if not argv or argv[0] in ("-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main())
