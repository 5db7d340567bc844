"""Logging set-up: one colored console stream on rank 0, a log file per rank."""

import logging
import os
import sys
from typing import List, Optional

from termcolor import colored

_LOGGER_NAMES = ("ssl_lab", "fvcore", "__main__")


class _ColorfulFormatter(logging.Formatter):
    def formatMessage(self, record):
        log = super().formatMessage(record)
        if record.levelno == logging.WARNING:
            return colored("WARNING ", "red", attrs=["blink"]) + log
        if record.levelno >= logging.ERROR:
            return colored("ERROR ", "red", attrs=["underline"]) + log
        return log


class DeferredFileHandler(logging.Handler):
    """Keeps the records until :func:`start_log_files` (called once the run is accepted),
    then writes them and every later record to `filename`: a refused run writes no log file."""

    def __init__(self, filename: str):
        super().__init__()
        self.filename = filename
        self._records: List[logging.LogRecord] = []
        self._file: Optional[logging.FileHandler] = None

    def start(self) -> None:
        if self._file is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.filename)), exist_ok=True)
            self._file = logging.FileHandler(self.filename, mode="a")
            self._file.setFormatter(self.formatter)
            for record in self._records:
                self._file.handle(record)
            self._records = []

    def emit(self, record):
        if self._file is None:
            self._records.append(record)
        else:
            self._file.handle(record)

    def close(self):
        if self._file is not None:
            self._file.close()
        super().close()


def start_log_files(name: str = "ssl_lab") -> None:
    """Start writing the deferred log files of `name`'s logger (see setup_logger's `defer_file`)."""
    for handler in logging.getLogger(name).handlers:
        if isinstance(handler, DeferredFileHandler):
            handler.start()


def setup_logger(output_dir: Optional[str] = None, distributed_rank: int = 0, name: str = "ssl_lab", defer_file: bool = False):
    """Configure `name` (and fvcore's logger) to print on rank 0 and write `output_dir/log.txt`.

    Rank r > 0 writes `log.txt.rank{r}`. With `defer_file`, nothing is written until
    :func:`start_log_files`. Returns the `name` logger.
    """
    plain = logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s", datefmt="%m/%d %H:%M:%S")
    handlers: List[logging.Handler] = []
    if distributed_rank == 0:
        console = logging.StreamHandler(stream=sys.stdout)
        console.setFormatter(
            _ColorfulFormatter(colored("[%(asctime)s %(name)s]: ", "green") + "%(message)s", datefmt="%m/%d %H:%M:%S")
            if sys.stdout.isatty()
            else plain
        )
        handlers.append(console)
    if output_dir:
        filename = os.path.join(output_dir, "log.txt")
        if distributed_rank > 0:
            filename += f".rank{distributed_rank}"
        if not defer_file:
            os.makedirs(output_dir, exist_ok=True)
        file_handler = DeferredFileHandler(filename) if defer_file else logging.FileHandler(filename, mode="a")
        file_handler.setFormatter(plain)
        handlers.append(file_handler)
    for logger_name in {name, *_LOGGER_NAMES}:
        logger = logging.getLogger(logger_name)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        for old in list(logger.handlers):
            logger.removeHandler(old)
            old.close()
        for handler in handlers:
            logger.addHandler(handler)
    return logging.getLogger(name)
