"""The CLI's exit codes and the error commands raise to end with one of them (kept out of cli.py, which also
runs as __main__)."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class CliError(Exception):
    """A command cannot go on; the message says what to do, exit_code what kind of failure it was."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code
