"""The exit-code contract of every command (README.md, section "Exit codes"), and the errors that
carry it: the library raises them, emotion_app/cli/runner.py turns them into the exit code.

0 done; 2 bad usage or an input that cannot be read; 3 the model cannot be loaded; 4 an output
cannot be written (or would be written over an input or another output); 130 interrupted; 1 only
for a bug.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

EXIT_OK, EXIT_BUG, EXIT_INPUT, EXIT_MODEL, EXIT_OUTPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

# The line each command's --help ends with: a pointer to the one table, never a copy of it.
EXIT_CODES_HELP = 'Exit codes: see "Exit codes" in README.md (the same for every command).'

# What loading a model raises when the adapter or base is missing, broken or does not fit.
MODEL_LOAD_ERRORS = (ValueError, OSError, RuntimeError, ImportError)


class CommandError(ValueError):
    """A failure a user can fix; `exit_code` says which kind. A ValueError, so that library
    callers that catch ValueError (the app) keep working."""

    exit_code = EXIT_BUG


class InputError(CommandError):
    """Bad usage, or an input that cannot be read (exit 2)."""

    exit_code = EXIT_INPUT


class ModelError(CommandError):
    """The model or engine cannot be loaded (exit 3)."""

    exit_code = EXIT_MODEL


class OutputError(CommandError):
    """An output cannot be written, or would be written over an input or another output (exit 4)."""

    exit_code = EXIT_OUTPUT


@contextmanager
def model_errors(adapter: str) -> Iterator[None]:
    """Failures while loading `adapter` (or its base) become ModelError naming it."""
    try:
        yield
    except CommandError:
        raise
    except MODEL_LOAD_ERRORS as err:
        raise ModelError(f"could not load the model from adapter {adapter!r}: {err}") from None
