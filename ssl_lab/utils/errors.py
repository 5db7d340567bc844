"""One clear message, not a traceback wall, for mistakes in user input.

Every error class that describes a bad input (a config key, a file, a dataset, an
output directory, a checkpoint) derives from :class:`UserError`; the entry points
print its message, at most MAX_LINES lines, and exit with status 2. Any other exception
is a bug and keeps its traceback. Set SSL_LAB_DEBUG=1 (or pass --debug) to see the
traceback of a user error too.
"""

import contextlib
import logging
import os
import re
import sys

__all__ = [
    "MAX_LINES",
    "MissingFileError",
    "ModelZooError",
    "UnknownModelError",
    "UserError",
    "debug_enabled",
    "exit_on_user_error",
    "format_user_error",
    "worker_error_summary",
]

MAX_LINES = 15


class UserError(Exception):
    """Base of the errors that mean "the input is wrong"; the message says what would be right."""


class MissingFileError(UserError, FileNotFoundError):
    """A file the input names (weights, a checkpoint, a dataset split) does not exist."""


class ModelZooError(UserError, RuntimeError):
    """A checkpoint that cannot be resolved, downloaded or verified.

    The message names the model / URL / file and says what was expected.
    """


class UnknownModelError(ModelZooError, KeyError):
    """A model name that is not in the catalog; the message lists close names."""

    def __str__(self):  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


def debug_enabled() -> bool:
    return os.environ.get("SSL_LAB_DEBUG", "") not in ("", "0")


def format_user_error(err: BaseException, where: str = "") -> str:
    """`ERROR: <message>` (`ERROR (<where>): ...`), cut to MAX_LINES lines."""
    message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    if "Original Traceback" in message:  # raised in a DataLoader worker
        message = worker_error_summary(err)
    lines = f"ERROR{f' ({where})' if where else ''}: {message}".strip().splitlines()
    if len(lines) > MAX_LINES:
        lines = lines[: MAX_LINES - 1] + [f"... ({len(lines) - MAX_LINES + 1} more lines; SSL_LAB_DEBUG=1 shows all)"]
    return "\n".join(lines)


# The last line of a worker's traceback: "<module.ExceptionName>: <message>".
_LAST_EXCEPTION = re.compile(r"^[\w.]*(?:Error|Exception|Interrupt)\w*: (.*)$", re.M)


def worker_error_summary(err: BaseException) -> str:
    """The message of an exception re-raised from a DataLoader worker, without the worker's
    traceback (the message itself names the file and the cause)."""
    text = str(err).strip()
    messages = _LAST_EXCEPTION.findall(text.split("Original Traceback")[-1])
    if messages:
        return messages[-1].strip()
    last = [line for line in text.splitlines() if line.strip()]
    return last[-1].strip() if last else type(err).__name__


@contextlib.contextmanager
def exit_on_user_error(exit_code: int = 2, where: str = ""):
    """Print `ERROR: <message>` (at most MAX_LINES lines) and exit with `exit_code` on a
    user-input error; exit 130 on Ctrl-C. With SSL_LAB_DEBUG=1 the exception propagates.

    where: names the process in the message (e.g. "rank 1").
    """
    try:
        yield
    except KeyboardInterrupt:
        if debug_enabled():
            raise
        print("Interrupted (Ctrl-C).", file=sys.stderr)
        sys.exit(130)
    except Exception as err:
        if debug_enabled() or not isinstance(err, UserError):
            raise
        text = format_user_error(err, where)
        _log_to_files(text)
        print(text, file=sys.stderr)
        sys.exit(exit_code)


def _log_to_files(text: str) -> None:
    """Put the message into the run's log files (the console gets it on stderr)."""
    logger = logging.getLogger("ssl_lab")
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, text, (), None)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
