"""Subcommands of the ``srbench`` console script; each module has ``main(argv) -> int``."""
