"""metrics.json: the JSON lines that :class:`ssl_lab.utils.events.JSONWriter` appends, one object with a
whole-number "iteration" per line, and the one reader of them (resumes, plots, sweeps, the demo)."""

import json
import math
from typing import Dict, List, Tuple

from .errors import UserError

__all__ = ["MetricsFileError", "read_metrics"]


class MetricsFileError(UserError, ValueError):
    """metrics.json cannot be read as the JSON lines a run writes."""


def _record(line: str):
    """The dict of one JSON line with a whole-number "iteration", or None and the reason it is not one."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        return None, f"not JSON ({err.msg})"
    if not isinstance(record, dict):
        return None, f"a JSON {type(record).__name__}, not an object"
    iteration = record.get("iteration")
    if (
        isinstance(iteration, bool)
        or not isinstance(iteration, (int, float))
        or not math.isfinite(iteration)
        or iteration != int(iteration)
    ):
        return None, f'its "iteration" is {iteration!r}, not a whole number'
    return record, ""


def read_metrics(path: str) -> Tuple[List[dict], List[str]]:
    """(records, skipped): one dict per logged iteration, in iteration order (where a resumed run logged
    an iteration again, its later lines win key by key), and "line N: why" for each line that is not a
    JSON object with a whole-number "iteration" (e.g. the last line, cut by a kill). A file that is not
    UTF-8 text raises :class:`MetricsFileError`."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise MetricsFileError(f"'{path}' is not a text file; metrics.json holds one JSON object per line") from None
    by_iter: Dict[int, dict] = {}
    skipped: List[str] = []
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record, why = _record(line)
        if record is None:
            skipped.append(f"line {line_no}: {why}")
            continue
        by_iter.setdefault(int(record["iteration"]), {}).update(record)
    return [by_iter[i] for i in sorted(by_iter)], skipped
