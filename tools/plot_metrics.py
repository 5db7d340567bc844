#!/usr/bin/env python
"""Draw loss, learning rate, kNN and online-probe accuracy of a run against iteration.

    python tools/plot_metrics.py OUTPUT_DIR [--output metrics.png]
"""
import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (("total_loss", "loss"), ("lr", "learning rate"), ("knn/top1", "kNN top-1 (%)"),
          ("online_probe/top1", "online probe top-1 (%)"))


class MetricsError(ValueError):
    """metrics.json cannot be read as the JSON lines a run writes."""


def _record(line: str):
    """The dict of one JSON line with an integer "iteration", or the reason it is not one."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        return None, f"not JSON ({err.msg})"
    if not isinstance(record, dict):
        return None, f"a JSON {type(record).__name__}, not an object"
    iteration = record.get("iteration")
    if isinstance(iteration, bool) or not isinstance(iteration, (int, float)) or not math.isfinite(iteration) \
            or iteration != int(iteration):
        return None, f"its \"iteration\" is {iteration!r}, not a whole number"
    return record, ""


def load_metrics(path: str):
    """(records, skipped): the JSON lines of metrics.json as a list of dicts (later lines win on
    resumed runs), and "line N: why" of each line that is not a JSON object with a whole-number
    "iteration". A file that is not UTF-8 text raises MetricsError."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise MetricsError(f"'{path}' is not a text file; metrics.json holds one JSON object per line") from None
    by_iter, skipped = {}, []
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record, why = _record(line)
        if record is None:
            skipped.append(f"line {line_no}: {why}")
            continue
        by_iter.setdefault(int(record["iteration"]), {}).update(record)
    return [by_iter[i] for i in sorted(by_iter)], skipped


def plot_metrics(records, output: str, title: str = "") -> None:
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 3.6))
    for ax, (key, label) in zip(axes, PANELS):
        points = [(r["iteration"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o" if len(points) < 20 else None)
        else:
            ax.text(0.5, 0.5, f"no '{key}' logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    try:
        fig.savefig(output, dpi=100)
    finally:
        plt.close(fig)


def _fail(message: str):
    """What is wrong, on one line (argparse's usage line would come first), and exit 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="a run's OUTPUT_DIR (holds metrics.json)")
    parser.add_argument("--output", default="", help="PNG path (default: OUTPUT_DIR/metrics.png)")
    args = parser.parse_args(argv)
    metrics_file = os.path.join(args.output_dir, "metrics.json")
    if not os.path.isfile(metrics_file):
        _fail(f"'{metrics_file}' does not exist: pass the OUTPUT_DIR of a training run")
    try:
        records, skipped = load_metrics(metrics_file)
    except MetricsError as err:
        _fail(str(err))
    bad = f"{len(skipped)} malformed lines (first: {skipped[0]})" if skipped else ""
    if not records:
        _fail(f"'{metrics_file}' holds no metrics{': ' + bad if bad else ' yet'}")
    if bad:
        print(f"warning: skipped {bad} of {metrics_file}", file=sys.stderr)
    output = args.output or os.path.join(args.output_dir, "metrics.png")
    try:
        plot_metrics(records, output, title=os.path.basename(os.path.normpath(args.output_dir)))
    except OSError as err:
        _fail(f"cannot write '{output}' ({err.strerror or err}); pass --output with a writable path")
    print(f"Wrote {output}")


if __name__ == "__main__":
    main()
