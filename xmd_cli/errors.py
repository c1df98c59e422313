"""The one exception type a user should ever see, and how the CLI prints it.

Code anywhere in xmd raises `XmdError` for bad input (a recipe typo, a missing
file, a corrupt wav); the CLI catches it and prints the message without a
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class XmdError(Exception):
    """A user-facing error: the message names the file, line or key and what to do."""

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"
