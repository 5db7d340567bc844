#!/usr/bin/env python
"""Reproduce the toy MI table of the EqCo paper (Table 5): InfoNCE vs EqCo (alpha = 512).

    python projects/EqCo/tools/toy_mi.py --output output/eqco/toy_mi
    python projects/EqCo/tools/toy_mi.py --output /tmp/toy --steps 300 --repeats 20   # a quick look

Writes table.csv, table.json ({"InfoNCE": {"<MI>": {"<N>": estimate}}, "EqCo": {...}, "provenance":
{commit, dirty, torch, machine, date, command, wall_seconds, cpu_seconds}}) and
toy_mi.png to --output, and prints the table beside the paper's. The full protocol (5000 steps,
1000 evaluation batches, 5 MIs x 4 Ns x 2 losses) took 565 s on 2 CPU cores shared with other jobs.
"""

import argparse
import csv
import functools
import json
import math
import multiprocessing
import os
import queue
import resource
import sys
import time

import torch
from tqdm import tqdm

REPO_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from eqco.toy_mi import PAPER_TABLE, estimate_mi  # noqa: E402
from ssl_lab.utils.files import atomic_write  # noqa: E402
from ssl_lab.utils.provenance import run_provenance  # noqa: E402

_progress = None  # a worker's queue for progress counts (set by _init_worker)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="output/eqco/toy_mi", help="directory for table.csv/json and the plot")
    parser.add_argument("--steps", type=int, default=5000, help="training steps per critic")
    parser.add_argument("--repeats", type=int, default=1000, help="evaluation batches averaged per estimate")
    parser.add_argument("--mi", type=float, nargs="+", default=[2, 4, 6, 8, 10], help="true MI values (nats)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512], help="N pairs per batch")
    parser.add_argument("--alpha", type=int, default=512, help="EqCo's alpha")
    parser.add_argument("--workers", type=int, default=2, help="processes (one CPU thread each)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 0 or args.repeats < 1 or args.alpha < 1 or args.workers < 1 or min(args.batch_sizes) < 2 or min(args.mi) <= 0:
        parser.error("need --steps >= 0, --repeats >= 1, --alpha >= 1, --workers >= 1, --batch-sizes >= 2, --mi > 0")
    return args


def _key(value: float) -> str:
    return f"{value:g}"


def _init_worker(progress_queue) -> None:
    global _progress
    _progress = progress_queue
    # One thread per process: intra-op threads on busy cores stall at every one of the many small ops.
    torch.set_num_threads(1)


def _run_job(job, args):
    """Train and evaluate the critics of one (N, method): returns (N, method, {MI: estimate})."""
    n, name, alpha = job
    # The same seed for both methods at one N: the same initializations and batches.
    estimates = estimate_mi({name: alpha}, args.mi, n, steps=args.steps, repeats=args.repeats, seed=args.seed + n, progress=_progress.put)
    return n, name, estimates[name]


def run(args) -> dict:
    """{method: {MI: {N: estimate}}}: one job per (N, method) on --workers processes, largest N first."""
    methods = {"InfoNCE": None, "EqCo": args.alpha}
    jobs = [(n, name, alpha) for n in sorted(args.batch_sizes, reverse=True) for name, alpha in methods.items()]
    table = {name: {mi: {} for mi in args.mi} for name in methods}
    context = multiprocessing.get_context("spawn")
    progress = context.Queue()
    with (
        tqdm(total=len(jobs) * (args.steps + args.repeats), unit="step") as bar,
        context.Pool(args.workers, initializer=_init_worker, initargs=(progress,)) as pool,
    ):
        results = pool.map_async(functools.partial(_run_job, args=args), jobs, chunksize=1)
        while not (results.ready() and progress.empty()):
            try:
                bar.update(progress.get(timeout=0.5))
            except queue.Empty:
                pass
        for n, name, by_mi in results.get():
            for mi, value in by_mi.items():
                table[name][mi][n] = value
    return {name: {mi: dict(sorted(by_n.items())) for mi, by_n in by_mi.items()} for name, by_mi in table.items()}


def write_csv(table: dict, batch_sizes, path: str) -> None:
    with atomic_write(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "mi"] + [str(n) for n in batch_sizes])
        for name, by_mi in table.items():
            for mi, by_n in by_mi.items():
                writer.writerow([name, _key(mi)] + [f"{by_n[n]:.4f}" for n in batch_sizes])


def write_json(table: dict, provenance: dict, path: str) -> None:
    record = {name: {_key(mi): {str(n): v for n, v in by_n.items()} for mi, by_n in by_mi.items()} for name, by_mi in table.items()}
    with atomic_write(path, "w") as f:
        json.dump({**record, "provenance": provenance}, f, indent=2)


def plot(table: dict, batch_sizes, alpha: int, path: str) -> None:
    """Estimate vs N, one color per MI: InfoNCE dashed, EqCo solid, true MI dotted, log N in gray."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7, 5))
    mis = list(table["InfoNCE"])
    colors = [plt.cm.tab10(i % 10) for i in range(len(mis))]
    for mi, color in zip(mis, colors):
        for name, style in (("InfoNCE", "--"), ("EqCo", "-")):
            ax.plot(batch_sizes, [table[name][mi][n] for n in batch_sizes], style, marker="o", color=color)
        ax.axhline(mi, color=color, linestyle=":", linewidth=1)
    ax.plot(batch_sizes, [math.log(n) for n in batch_sizes], color="0.6", linewidth=4, zorder=0)
    ax.axhline(math.log(alpha + 1), color="gray", linestyle="-.", linewidth=1)
    ax.set_xscale("log", base=2)
    ax.set_xticks(batch_sizes, [str(n) for n in batch_sizes])
    ax.set_xlabel("N (pairs per batch; K = N - 1 negatives)")
    ax.set_ylabel("MI estimate (nats)")
    ax.set_title("Toy MI estimation (EqCo Table 5)")
    handles = [
        Line2D([], [], color="k", linestyle="--", label="InfoNCE"),
        Line2D([], [], color="k", linestyle="-", label=f"EqCo (alpha = {alpha})"),
        Line2D([], [], color="k", linestyle=":", label="true MI"),
        Line2D([], [], color="0.6", linewidth=4, label="log N (InfoNCE's cap)"),
        Line2D([], [], color="gray", linestyle="-.", label="log(alpha + 1) (EqCo's cap)"),
    ]
    handles += [Line2D([], [], color=c, label=f"MI = {_key(mi)}") for mi, c in zip(mis, colors)]
    ax.legend(handles=handles, fontsize=8, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_comparison(table: dict, batch_sizes) -> str:
    """The table, each row beside the paper's numbers ('-' where the paper has none)."""
    width = 7 * len(batch_sizes)
    lines = [
        f"{'MI':>4}  {'method':<8}{'this run':^{width}}|{'paper (Table 5)':^{width}}",
        f"{'':>4}  {'N =':<8}" + "".join(f"{n:>7}" for n in batch_sizes) + "|" + "".join(f"{n:>7}" for n in batch_sizes),
    ]
    for mi in table["InfoNCE"]:
        for name in table:
            paper = PAPER_TABLE[name].get(mi, {})
            ours = "".join(f"{table[name][mi][n]:>7.2f}" for n in batch_sizes)
            theirs = "".join(f"{paper[n]:>7.1f}" if n in paper else f"{'-':>7}" for n in batch_sizes)
            lines.append(f"{_key(mi):>4}  {name:<8}{ours}|{theirs}")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    provenance = run_provenance(REPO_ROOT)  # the code as it starts
    start = time.perf_counter()
    table = run(args)
    elapsed = time.perf_counter() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, once they have exited
    cpu_seconds = children.ru_utime + children.ru_stime + time.process_time()
    write_csv(table, args.batch_sizes, os.path.join(args.output, "table.csv"))
    provenance.update(command=" ".join(sys.argv), wall_seconds=round(elapsed, 1), cpu_seconds=round(cpu_seconds, 1))
    write_json(table, provenance, os.path.join(args.output, "table.json"))
    plot(table, args.batch_sizes, args.alpha, os.path.join(args.output, "toy_mi.png"))
    print(format_comparison(table, args.batch_sizes))
    print(
        f"{args.steps} steps, {args.repeats} evaluation batches, {args.workers} workers: {elapsed:.0f} s. "
        f"Written to {args.output}/table.csv, table.json, toy_mi.png"
    )


if __name__ == "__main__":
    main()
