#!/usr/bin/env python
"""Draw loss, learning rate, kNN and online-probe accuracy of a run against iteration.

python tools/plot_metrics.py OUTPUT_DIR [--output metrics.png]
"""

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ssl_lab.utils.metrics_file import MetricsFileError, read_metrics  # noqa: E402

PANELS = (("total_loss", "loss"), ("lr", "learning rate"), ("knn/top1", "kNN top-1 (%)"), ("online_probe/top1", "online probe top-1 (%)"))


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
        records, skipped = read_metrics(metrics_file)
    except MetricsFileError as err:
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
