#!/usr/bin/env python
"""Run a grid of pretraining runs (cells x seeds) through tools/train_net.py; tabulate and plot it.

    python tools/sweep.py projects/EqCo/sweeps/fig3_moco.yaml             # run (resumable), collect, plot
    python tools/sweep.py SPEC --dry-run                                   # list the runs and stop
    python tools/sweep.py SPEC --table                                     # markdown table of finished runs
    python tools/sweep.py SPEC --update-readme projects/EqCo/README.md     # that table (and the figure,
                                                                           # as sweeps/<name>.png) into the README

The spec (YAML) names the grid:

    name: fig3_moco                      # also the README marker <!-- sweep:fig3_moco --> ... <!-- /sweep:fig3_moco -->
    output_dir: output/sweeps/fig3_moco  # one folder per run: <cell>/seed<S>/{pretrain,linear}, result.json
    seeds: [0, 1, 2]                     # each run is `SEED <s>`; the data stay the same
    data_opts: [KEY, VALUE, ...]         # pretraining and linear evaluation (image size, dataset)
    opts: [KEY, VALUE, ...]              # every pretraining run
    linear_eval: {config: FILE, opts: [...]}   # optional: linear probe on each run's model_final.pth
    cells:                               # config file + overrides + the labels the table and figure use
      - {name: k16, config: FILE, opts: [...], labels: {K: 16, loss: InfoNCE}, num_gpus: 1}  # processes (pretraining)
    plot: {x: K, series: loss, metrics: [knn_top1, linear_top1], log_x: true}

Each run is a `tools/train_net.py --resume` subprocess, exactly what a user would type: its
registries, seeds, thread pool and memory are its own, a failing run does not take the sweep down,
and a killed sweep leaves checkpoints that `--resume` continues. A run is finished once its
result.json is written; finished runs are never run again. The first run's measured wall time and
s/it give the estimate for the rest of the grid, printed before the rest starts.
"""
import argparse
import csv
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from ssl_lab.engine import DefaultTrainer, setup_cfg  # noqa: E402
from ssl_lab.utils.errors import exit_on_user_error  # noqa: E402

# Reported name -> (key in a run's metrics.json, how a run's value is read): "final" is the
# evaluation after the last iteration; "tail" the mean of the logged values in the last 10 % of
# training (per-step monitors are noisy).
PRETRAIN_METRICS = {
    "knn_top1": ("knn/top1", "final"),
    "mi_bound": ("eqco/mi_bound", "tail"),
    "grad_norm_q": ("eqco/grad_norm_q", "tail"),
    "embedding_effective_rank": ("collapse/embedding_effective_rank", "tail"),
    "backbone_effective_rank": ("collapse/backbone_effective_rank", "final"),
}
LINEAR_METRICS = {"linear_top1": ("top1", "final")}
EVALUATED_KEYS = {"knn/top1", "top1"}  # what an evaluation of model_final.pth gives back
TAIL_FRACTION = 0.1


# ----------------------------------------------------------------------------------------- the spec
class Run:
    """One pretraining run of the grid (a cell at one seed) and its output folders."""

    def __init__(self, spec: dict, cell: dict, seed: int):
        self.cell, self.seed = cell["name"], seed
        self.labels = dict(cell.get("labels", {}))
        self.dir = os.path.join(spec["output_dir"], cell["name"], f"seed{seed}")
        self.num_gpus = int(cell.get("num_gpus", 1))
        self.pretrain = ("pretrain", cell["config"],
                         [*spec.get("data_opts", []), *spec.get("opts", []), *cell.get("opts", []), "SEED", seed])
        linear = spec.get("linear_eval")
        self.linear = None if not linear else (
            "linear", linear["config"],
            [*spec.get("data_opts", []), *linear.get("opts", []), "SEED", seed,
             "MODEL.WEIGHTS", os.path.join(self.dir, "pretrain", "model_final.pth")])

    @property
    def result_file(self) -> str:
        return os.path.join(self.dir, "result.json")

    def stages(self):
        return [s for s in (self.pretrain, self.linear) if s]


def load_spec(path: str) -> dict:
    with open(path) as f:
        spec = yaml.safe_load(f)
    missing = [k for k in ("name", "output_dir", "seeds", "cells") if k not in spec]
    if missing:
        raise ValueError(f"{path}: the sweep spec lacks {missing}; see `tools/sweep.py --help` for its format")
    names = [c["name"] for c in spec["cells"]]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: cell names repeat: {names}")
    return spec


def expand(spec: dict) -> List[Run]:
    return [Run(spec, cell, seed) for cell in spec["cells"] for seed in spec["seeds"]]


def stage_cfg(config_file: str, opts):
    """The merged (not yet scheduled) config of one stage; raises on a bad key or value."""
    return setup_cfg(argparse.Namespace(config_file=os.path.join(REPO_ROOT, config_file),
                                        opts=[str(v) for v in opts]))


def pixels_per_step(cfg) -> int:
    """Pixels through the model a step: the s/it of one run scales to another's by this ratio."""
    return cfg.SOLVER.IMS_PER_BATCH * cfg.INPUT.NUM_VIEWS * cfg.INPUT.CROP_SIZE**2


# -------------------------------------------------------------------------------- reading a run's files
def read_metrics(metrics_file: str) -> List[dict]:
    """The JSON records of a metrics.json; a line cut by a kill is skipped."""
    records = []
    with open(metrics_file) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def read_value(records: List[dict], key: str, how: str, max_iter: int) -> Optional[float]:
    """A run's `key`: "final" its last value if logged at the end of training (None otherwise),
    "tail" the mean of its values in the last TAIL_FRACTION of the iterations (at least the last one)."""
    # A resumed run logs some iterations again: the later record wins.
    logged = {r["iteration"]: r[key] for r in records if key in r}
    if not logged:
        return None
    if how == "final":
        last = max(logged)
        return float(logged[last]) if last >= max_iter - 1 else None
    first = max_iter - max(1, round(TAIL_FRACTION * max_iter))
    tail = [v for it, v in logged.items() if first <= it < max_iter]
    return statistics.fmean(tail) if tail else None


def evaluate_final_weights(stage_dir: str) -> dict:
    """Evaluate stage_dir/model_final.pth with the run's own config, as `train_net.py --eval-only`
    does (for a run killed between its last checkpoint and its final evaluation)."""
    cfg = setup_cfg(argparse.Namespace(config_file=os.path.join(stage_dir, "config.yaml"), opts=[]))
    cfg.freeze()
    model = DefaultTrainer.build_model(cfg)
    DefaultTrainer.load_weights(model, os.path.join(stage_dir, "model_final.pth"))
    return DefaultTrainer.test(cfg, model)


def collect_stage(stage_dir: str, metrics: Dict[str, tuple], max_iter: int) -> dict:
    records = read_metrics(os.path.join(stage_dir, "metrics.json"))
    values = {name: read_value(records, key, how, max_iter) for name, (key, how) in metrics.items()}
    if any(values[name] is None and key in EVALUATED_KEYS for name, (key, _) in metrics.items()):
        evaluated = evaluate_final_weights(stage_dir)
        values.update({name: float(evaluated[key]) for name, (key, _) in metrics.items()
                       if values[name] is None and key in evaluated})
    times = [r["time"] for r in records if "time" in r]
    return {"values": {k: v for k, v in values.items() if v is not None},
            "s_per_iter": statistics.median(times) if times else None}


# ------------------------------------------------------------------------------------------ running
def run_stage(run: Run, stage) -> int:
    """One `train_net.py --resume` subprocess (the pretraining on the cell's num_gpus processes, the
    linear probe on one); returns its exit code."""
    name, config_file, opts = stage
    processes = run.num_gpus if name == "pretrain" else 1
    cmd = [sys.executable, os.path.join(REPO_ROOT, "tools", "train_net.py"), "--config-file",
           os.path.join(REPO_ROOT, config_file), "--resume", "--num-gpus", str(processes),
           *[str(v) for v in opts], "OUTPUT_DIR", os.path.join(run.dir, name)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))}
    return subprocess.run(cmd, env=env).returncode


def execute(run: Run, max_iters: Dict[str, int]) -> dict:
    """Run (or continue) both stages of `run`, then write and return its result.json."""
    start = time.perf_counter()
    result = {"cell": run.cell, "seed": run.seed, "labels": run.labels, "values": {}}
    for stage in run.stages():
        code = run_stage(run, stage)
        if code != 0:
            raise SystemExit(f"{run.cell} seed {run.seed}: train_net.py ({stage[0]}) exited with {code}; "
                             f"see {os.path.join(run.dir, stage[0], 'log.txt')}. Rerun the sweep to continue.")
        metrics = PRETRAIN_METRICS if stage[0] == "pretrain" else LINEAR_METRICS
        collected = collect_stage(os.path.join(run.dir, stage[0]), metrics, max_iters[stage[0]])
        result["values"].update(collected["values"])
        result[f"{stage[0]}_s_per_iter"] = collected["s_per_iter"]
    result["wall_s"] = time.perf_counter() - start
    with open(run.result_file + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
    os.replace(run.result_file + ".tmp", run.result_file)  # a kill never leaves half a result
    return result


def estimate_seconds(measured: dict, measured_cost: dict, cost: dict) -> float:
    """Wall time of a run of `cost` ({stage: (iterations, pixels a step)}) from a measured run:
    its s/it scaled by pixels a step, plus its time outside the training iterations."""
    rate = {s: measured.get(f"{s}_s_per_iter") or 0.0 for s in measured_cost}  # 0: no step time logged
    overhead = max(measured["wall_s"] - sum(rate[s] * it for s, (it, _) in measured_cost.items()), 0.0)
    return overhead + sum(rate[s] * it * pixels / measured_cost[s][1] for s, (it, pixels) in cost.items())


def format_duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"


def plan(runs: List[Run]) -> Dict[str, dict]:
    """{run dir: {stage: (iterations, pixels a step)}}; merging every config first makes a bad key
    or value fail before anything runs."""
    costs = {}
    for run in runs:
        costs[run.dir] = {}
        for name, config_file, opts in run.stages():
            cfg = stage_cfg(config_file, opts)
            if cfg.SOLVER.MAX_ITER <= 0:
                raise ValueError(f"{run.cell}: set SOLVER.MAX_ITER in the spec (the sweep counts iterations)")
            costs[run.dir][name] = (cfg.SOLVER.MAX_ITER, pixels_per_step(cfg))
    return costs


def run_grid(spec: dict, runs: List[Run]) -> None:
    costs = plan(runs)
    pending = [r for r in runs if not os.path.isfile(r.result_file)]
    print(f"Sweep {spec['name']}: {len(runs)} runs ({len(spec['cells'])} cells x {len(spec['seeds'])} seeds), "
          f"{len(runs) - len(pending)} finished, {len(pending)} to run -> {spec['output_dir']}", flush=True)
    measured = next((r for r in runs if os.path.isfile(r.result_file)), None)
    for i, run in enumerate(pending):
        if measured is not None:
            with open(measured.result_file) as f:
                reference = json.load(f)
            left = sum(estimate_seconds(reference, costs[measured.dir], costs[r.dir]) for r in pending[i:])
            print(f"[sweep] estimated time for the {len(pending) - i} runs left: {format_duration(left)} "
                  f"(from {measured.cell} seed {measured.seed}: {reference['pretrain_s_per_iter'] or 0:.2f} s/it, "
                  f"{format_duration(reference['wall_s'])} a run)", flush=True)
        print(f"[sweep] run {len(runs) - len(pending) + i + 1}/{len(runs)}: {run.cell} seed {run.seed}", flush=True)
        execute(run, {name: it for name, (it, _) in costs[run.dir].items()})
        measured = measured or run


# ------------------------------------------------------------------------------------ the summaries
def load_results(runs: List[Run]) -> List[dict]:
    results = []
    for run in runs:
        if os.path.isfile(run.result_file):
            with open(run.result_file) as f:
                results.append(json.load(f))
    return results


def summarize(spec: dict, results: List[dict]) -> List[dict]:
    """Per cell (spec order): labels, the seeds it has, and mean / sample std (n - 1) of each metric."""
    summary = []
    for cell in spec["cells"]:
        mine = [r for r in results if r["cell"] == cell["name"]]
        if not mine:
            continue
        row = {"cell": cell["name"], "labels": dict(cell.get("labels", {})), "seeds": [r["seed"] for r in mine]}
        for metric in sorted({m for r in mine for m in r["values"]}):
            values = [r["values"][metric] for r in mine if metric in r["values"]]
            row[metric] = {"mean": statistics.fmean(values), "n": len(values),
                           "std": statistics.stdev(values) if len(values) > 1 else float("nan")}
        summary.append(row)
    return summary


def write_csv(path: str, results: List[dict]) -> None:
    labels = sorted({k for r in results for k in r["labels"]})
    metrics = sorted({k for r in results for k in r["values"]})
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["cell", "seed", *labels, *metrics, "wall_s"])
        for r in results:
            writer.writerow([r["cell"], r["seed"], *[r["labels"].get(k, "") for k in labels],
                             *[r["values"].get(k, "") for k in metrics], r["wall_s"]])


def _format_stat(metric: str, stat: Optional[dict]) -> str:
    if not stat:
        return "-"
    digits = 1 if metric.endswith("top1") else 2
    std = "" if math.isnan(stat["std"]) else f" ± {stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}{std}"


def markdown_table(spec: dict, summary: List[dict]) -> str:
    """The grid's table: one row per cell, mean ± std over seeds (n = seeds that finished)."""
    if not summary:
        return (f"*Not run yet.* `python tools/sweep.py {spec.get('path', 'SPEC')}` runs the grid; "
                f"`--update-readme` puts its table here.")
    labels = list(dict.fromkeys(k for row in summary for k in row["labels"]))
    metrics = [m for m in [*PRETRAIN_METRICS, *LINEAR_METRICS] if any(m in row for row in summary)]
    lines = ["| " + " | ".join([*labels, *metrics, "seeds"]) + " |", "|" + "---|" * (len(labels) + len(metrics) + 1)]
    for row in summary:
        cells = [str(row["labels"].get(k, "")) for k in labels] + [_format_stat(m, row.get(m)) for m in metrics]
        lines.append("| " + " | ".join([*cells, str(len(row["seeds"]))]) + " |")
    return "\n".join(lines) + "\n\nmean ± sample std over seeds; accuracies in %, monitors as logged."


def plot_grid(spec: dict, summary: List[dict], path: str) -> None:
    """Mean ± std over seeds of each plot metric against plot.x, one line per plot.series value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot = spec["plot"]
    metrics = [m for m in plot["metrics"] if any(m in row for row in summary)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    series = list(dict.fromkeys(row["labels"].get(plot.get("series")) for row in summary))
    for ax, metric in zip(axes[0], metrics):
        for value in series:
            rows = sorted((r for r in summary if r["labels"].get(plot.get("series")) == value and metric in r),
                          key=lambda r: r["labels"][plot["x"]])
            ax.errorbar([r["labels"][plot["x"]] for r in rows], [r[metric]["mean"] for r in rows],
                        yerr=[0 if math.isnan(r[metric]["std"]) else r[metric]["std"] for r in rows],
                        marker="o", capsize=3, label=str(value) if value is not None else None)
        if plot.get("log_x"):
            ax.set_xscale("log", base=2)
        ax.set_xlabel(plot["x"])
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if series != [None]:
            ax.legend(title=plot.get("series"))
    fig.suptitle(f"{spec['name']} (mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def update_readme(path: str, name: str, table: str) -> None:
    """Replace the text between <!-- sweep:NAME --> and <!-- /sweep:NAME --> in `path` with `table`."""
    with open(path) as f:
        text = f.read()
    pattern = re.compile(rf"(<!-- sweep:{re.escape(name)} -->\n).*?(<!-- /sweep:{re.escape(name)} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"{path} has no <!-- sweep:{name} --> ... <!-- /sweep:{name} --> markers to fill")
    with open(path, "w") as f:
        f.write(pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text))


def write_summaries(spec: dict, runs: List[Run]) -> List[dict]:
    """runs.csv, summary.json, summary.md and (with a plot section) figure.png in output_dir."""
    results = load_results(runs)
    summary = summarize(spec, results)
    if not results:
        return summary
    out = spec["output_dir"]
    write_csv(os.path.join(out, "runs.csv"), results)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(markdown_table(spec, summary) + "\n")
    if spec.get("plot"):
        plot_grid(spec, summary, os.path.join(out, "figure.png"))
    print(f"Results of {len(results)}/{len(runs)} runs: {out}/runs.csv, summary.json, summary.md"
          + (", figure.png" if spec.get("plot") else ""), flush=True)
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", help="the grid's YAML file")
    parser.add_argument("--output-dir", help="instead of the spec's output_dir")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and what is finished; run nothing")
    parser.add_argument("--table", action="store_true", help="print the markdown table of the finished runs")
    parser.add_argument("--update-readme", metavar="FILE", help="put that table between FILE's sweep markers")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    spec["path"] = os.path.relpath(os.path.abspath(args.spec), REPO_ROOT)
    if args.output_dir:
        spec["output_dir"] = args.output_dir
    runs = expand(spec)
    if args.dry_run:
        costs = plan(runs)
        for run in runs:
            iters = ", ".join(f"{name} {it} it" for name, (it, _) in costs[run.dir].items())
            print(f"{'done' if os.path.isfile(run.result_file) else 'todo'}  {run.cell:<16} seed {run.seed}  "
                  f"{iters}  {run.pretrain[1]}")
        return
    if not (args.table or args.update_readme):
        os.makedirs(spec["output_dir"], exist_ok=True)
        try:
            run_grid(spec, runs)
        except KeyboardInterrupt:
            sys.exit("\nStopped. Finished runs are kept; the same command continues the grid.")
    summary = write_summaries(spec, runs)
    table = markdown_table(spec, summary)
    if args.update_readme:
        figure = os.path.join(spec["output_dir"], "figure.png")
        if summary and os.path.isfile(figure):  # published beside the README: sweeps/<name>.png
            readme_dir = os.path.dirname(os.path.abspath(args.update_readme))
            published = os.path.join(readme_dir, "sweeps", f"{spec['name']}.png")
            os.makedirs(os.path.dirname(published), exist_ok=True)
            shutil.copyfile(figure, published)
            table += f"\n\n![{spec['name']}](sweeps/{spec['name']}.png)"
        update_readme(args.update_readme, spec["name"], table)
    print(table)


if __name__ == "__main__":
    with exit_on_user_error():
        main()
