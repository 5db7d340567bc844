#!/usr/bin/env python
"""Draw loss, learning rate, kNN and online-probe accuracy of a run against iteration.

    python tools/plot_metrics.py OUTPUT_DIR [--output metrics.png]
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (("total_loss", "loss"), ("lr", "learning rate"), ("knn/top1", "kNN top-1 (%)"),
          ("online_probe/top1", "online probe top-1 (%)"))


def load_metrics(path: str):
    """The JSON lines of metrics.json as a list of dicts (later lines win on resumed runs)."""
    by_iter = {}
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                print(f"warning: skipping malformed line {line_no} of {path}", file=sys.stderr)
                continue
            by_iter.setdefault(record["iteration"], {}).update(record)
    return [by_iter[i] for i in sorted(by_iter)]


def plot_metrics(records, output: str, title: str = "") -> None:
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 3.6))
    for ax, (key, label) in zip(axes, PANELS):
        points = [(r["iteration"], r[key]) for r in records if key in r]
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
    fig.savefig(output, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="a run's OUTPUT_DIR (holds metrics.json)")
    parser.add_argument("--output", default="", help="PNG path (default: OUTPUT_DIR/metrics.png)")
    args = parser.parse_args(argv)
    metrics_file = os.path.join(args.output_dir, "metrics.json")
    if not os.path.isfile(metrics_file):
        parser.error(f"'{metrics_file}' does not exist: pass the OUTPUT_DIR of a training run")
    records = load_metrics(metrics_file)
    if not records:
        parser.error(f"'{metrics_file}' holds no metrics yet")
    output = args.output or os.path.join(args.output_dir, "metrics.png")
    plot_metrics(records, output, title=os.path.basename(os.path.normpath(args.output_dir)))
    print(f"Wrote {output}")


if __name__ == "__main__":
    main()
