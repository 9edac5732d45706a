"""The one runner every command's main() goes through: parse, run, and map what went wrong to the
exit-code contract (emotion_app/errors.py; README.md, section "Exit codes")."""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Callable

from emotion_app.errors import (
    EXIT_BUG,
    EXIT_CODES_HELP,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT,
    CommandError,
)

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
TIMED_LOG_FORMAT = "%(asctime)s " + LOG_FORMAT  # for the long runs (train, soup)
NOTHING_WRITTEN = "nothing was written."
# OSErrors that say an output cannot be written; any other escaping OSError is an unreadable input.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})

Body = Callable[[argparse.Namespace], "int | None"]


def command_parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """A command's parser: its docstring as the description, the exit-code pointer as the epilog."""
    return argparse.ArgumentParser(prog=f"python -m emotion_app {name}", description=doc, epilog=EXIT_CODES_HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def run_command(parser: argparse.ArgumentParser | Callable[[list[str]], argparse.Namespace],
                argv: list[str] | None, body: Body, *,
                interrupted: Callable[[argparse.Namespace], str] | None = None,
                log_format: str = LOG_FORMAT) -> int:
    """Parse `argv` (argparse's own usage errors exit 2), run body(args) and return its exit code
    (0 when it returns None). `parser` is an ArgumentParser or a function argv -> args.
    `interrupted(args)` says what Ctrl-C left behind (default: nothing was written)."""
    logging.basicConfig(level=logging.INFO, format=log_format)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = None
    try:
        args = parser.parse_args(argv) if isinstance(parser, argparse.ArgumentParser) else parser(argv)
        return body(args) or EXIT_OK
    except CommandError as err:
        return _fail(str(err), err.exit_code)
    except ValueError as err:  # the library's input checks: what was expected and how to fix it
        return _fail(str(err), EXIT_INPUT)
    except OSError as err:
        return _fail(*_os_error(err))
    except KeyboardInterrupt:
        said = interrupted(args) if interrupted and args is not None else NOTHING_WRITTEN
        print(f"interrupted: {said}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # the one place that catches everything else: it is a bug, reported as one
        logger.exception("unexpected error")
        return _fail(f"unexpected {type(err).__name__}: {err}. This is a bug: please report it with the "
                     "traceback above.", EXIT_BUG)


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _os_error(err: OSError) -> tuple[str, int]:
    where = f" {err.filename}" if err.filename else ""
    if err.errno in WRITE_ERRNOS:
        return f"could not write{where}: {err.strerror}. Free some space or choose another place.", EXIT_OUTPUT
    return (f"could not read{where}: {err.strerror or err}. Check that the path exists and can be read.",
            EXIT_INPUT)
