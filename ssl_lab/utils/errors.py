"""One clear message, not a traceback wall, for mistakes in user input."""
import contextlib
import logging
import os
import sys


__all__ = ["exit_on_user_error"]


def _user_error_types():
    from torch.multiprocessing import ProcessRaisedException

    from ssl_lab.config import ConfigError
    from ssl_lab.data.datasets import BadImageError, DatasetNotFoundError
    from ssl_lab.engine.defaults import OutputDirInUseError
    from ssl_lab.engine.train_loop import NonFiniteLossError

    return (ConfigError, DatasetNotFoundError, BadImageError, OutputDirInUseError,
            NonFiniteLossError, KeyError, ValueError, FileNotFoundError, PermissionError), ProcessRaisedException


@contextlib.contextmanager
def exit_on_user_error(exit_code: int = 2):
    """Print `ERROR: <message>` and exit with `exit_code` on a user-input error.

    Set SSL_LAB_DEBUG=1 to see the full traceback instead.
    """
    user_errors, child_error = _user_error_types()
    try:
        yield
    except user_errors as err:
        if os.environ.get("SSL_LAB_DEBUG"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        logging.getLogger("ssl_lab").error(f"{type(err).__name__}: {message}")
        print(f"ERROR: {message}", file=sys.stderr)
        sys.exit(exit_code)
    except child_error as err:
        if os.environ.get("SSL_LAB_DEBUG"):
            raise
        last_line = str(err).strip().splitlines()[-1]
        print(f"ERROR in a worker process: {last_line}", file=sys.stderr)
        sys.exit(exit_code)


