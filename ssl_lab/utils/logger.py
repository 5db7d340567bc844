"""Logging set-up: one colored console stream on rank 0, a log file per rank."""
import logging
import os
import sys

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


def setup_logger(output_dir: str = None, distributed_rank: int = 0, name: str = "ssl_lab"):
    """Configure `name` (and fvcore's logger) to print on rank 0 and write `output_dir/log.txt`.

    Rank r > 0 writes `log.txt.rank{r}`. Returns the `name` logger.
    """
    plain = logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s", datefmt="%m/%d %H:%M:%S")
    handlers = []
    if distributed_rank == 0:
        console = logging.StreamHandler(stream=sys.stdout)
        console.setFormatter(
            _ColorfulFormatter(
                colored("[%(asctime)s %(name)s]: ", "green") + "%(message)s", datefmt="%m/%d %H:%M:%S"
            )
            if sys.stdout.isatty()
            else plain
        )
        handlers.append(console)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        filename = os.path.join(output_dir, "log.txt")
        if distributed_rank > 0:
            filename += f".rank{distributed_rank}"
        file_handler = logging.FileHandler(filename, mode="a")
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
