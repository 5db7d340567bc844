#!/usr/bin/env python
"""Run a grid of pretraining runs (cells x seeds) through tools/train_net.py; tabulate and plot it.

    python tools/sweep.py projects/EqCo/sweeps/testbed_moco.yaml          # run (resumable), collect, plot
    python tools/sweep.py SPEC --dry-run                                   # list the runs and stop
    python tools/sweep.py SPEC --seeds 3 4 [--cells k16 k64]               # one share of the grid (run
                                                                           # shares side by side, then --collect)
    python tools/sweep.py SPEC --collect                                   # the CSV from the finished runs only
    python tools/sweep.py SPEC --table                                     # markdown table of finished runs
    python tools/sweep.py SPEC --update-readme                             # the README's table and figure
                                                                           # from the committed CSV only

The spec (YAML) names the grid:

    name: eqco_testbed_moco              # also the README marker <!-- sweep:eqco_testbed_moco --> ... <!-- /sweep:... -->
    output_dir: output/sweeps/eqco/testbed_moco  # one folder per run: <cell>/seed<S>/{pretrain,linear}, result.json
    results: projects/EqCo/results/eqco_testbed_moco.csv   # the committed CSV (default: ../results/<name>.csv
                                         # beside the spec's folder); <name>_curve.csv beside it with `curve`
    readme: projects/EqCo/README.md      # where --update-readme writes; figures go to <readme dir>/results/
    seeds: [0, 1, 2]                     # each run is `SEED <s>`; the data stay the same
    search: true                         # optional: a recipe search (fewer seeds allowed; no claim cites it)
    data_opts: [KEY, VALUE, ...]         # pretraining and linear evaluation (image size, dataset)
    opts: [KEY, VALUE, ...]              # every pretraining run
    linear_eval: {config: FILE, opts: [...]}   # optional: linear probe on each run's model_final.pth
    monitors: {mi_bound: [eqco/mi_bound, tail]}  # extra CSV columns: name: [metrics.json key, final|tail]
    cells:                               # config file + overrides + the labels the table and figure use
      - {name: random_init, config: FILE}  # required: the same model and evaluation, no training
      - {name: k16, config: FILE, opts: [...], labels: {K: 16, loss: InfoNCE}, num_gpus: 1}  # processes (pretraining)
    compare: [[k256, k16]]               # paired differences (second - first) by seed; default: each cell
                                         # against random_init
    curve: true                          # also the accuracy of every evaluation during training
    plot: {series: loss, metrics: [knn_top1, linear_top1]}   # curve_x: images_seen puts the curve's x
                                         # in images rather than iterations (cells of different batch size)

Provenance: each run records the commit of the code that ran it and whether tracked files had
uncommitted changes. Rows from a dirty tree, or from another commit than the CSV's rows, are
refused unless `--allow-mixed`; a table from mixed commits says so under it.

Each run is a `tools/train_net.py --resume` subprocess, exactly what a user would type: its
registries, seeds, thread pool and memory are its own, a failing run does not take the sweep down,
and a killed sweep leaves checkpoints that `--resume` continues. A run is finished once its
result.json is written; finished runs are never run again. The first run's measured wall time and
s/it give the estimate for the rest of the grid, printed before the rest starts.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from ssl_lab.config import get_cfg  # noqa: E402
from ssl_lab.config.config import invalid_yaml_message  # noqa: E402
from ssl_lab.engine import DefaultTrainer, default_setup, setup_cfg  # noqa: E402
from ssl_lab.utils.errors import UserError, exit_on_user_error  # noqa: E402
from ssl_lab.utils.files import atomic_write, replace_marked_block  # noqa: E402
from ssl_lab.utils.metrics_file import read_metrics  # noqa: E402
from ssl_lab.utils.provenance import run_provenance  # noqa: E402

import sweep_results  # noqa: E402

# Reported name -> (key in a run's metrics.json, how a run's value is read): "final" is the
# evaluation after the last iteration; "tail" the mean of the logged values in the last 10 % of
# training (per-step monitors are noisy). A grid's monitors come from its spec (`monitors:`).
ACCURACY_METRICS = {"knn_top1": ("knn/top1", "final"), "linear_top1": ("linear_probe/top1", "final")}
LINEAR_METRICS = {"linear_top1": ("top1", "final")}
EVALUATED_KEYS = {"knn/top1", "linear_probe/top1", "top1"}  # what an evaluation of model_final.pth gives back
TAIL_FRACTION = 0.1
RANDOM_INIT = sweep_results.RANDOM_INIT
CURVE_X = ("iteration", "images_seen")  # plot.curve_x: the x axis of the curve figure


# ----------------------------------------------------------------------------------------- the spec
class Run:
    """One pretraining run of the grid (a cell at one seed) and its output folders."""

    def __init__(self, spec: dict, cell: dict, seed: int):
        self.grid, self.cell, self.seed = spec["name"], cell["name"], seed
        self.labels = dict(cell.get("labels", {}))
        self.dir = os.path.join(spec["output_dir"], cell["name"], f"seed{seed}")
        self.num_gpus = int(cell.get("num_gpus", 1))
        self.trains = cell["name"] != RANDOM_INIT  # random_init: the seeded initial weights, evaluated
        self.pretrain = (
            "pretrain",
            cell["config"],
            [*spec.get("data_opts", []), *spec.get("opts", []), *cell.get("opts", []), "SEED", seed],
        )
        linear = spec.get("linear_eval")
        self.linear = (
            None
            if not linear
            else (
                "linear",
                linear["config"],
                [
                    *spec.get("data_opts", []),
                    *linear.get("opts", []),
                    "SEED",
                    seed,
                    "MODEL.WEIGHTS",
                    os.path.join(self.dir, "pretrain", "model_final.pth") if self.trains else "",
                ],
            )
        )

    @property
    def result_file(self) -> str:
        return os.path.join(self.dir, "result.json")

    def stages(self):
        return [s for s in (self.pretrain, self.linear) if s]


class SpecError(UserError):
    """A sweep spec that cannot be run as written; the message says what would be right."""


def load_spec(path: str) -> dict:
    """The spec of `path`, checked: a mapping with name, output_dir, a list of integer seeds and cells
    that each have a name and an existing config file; a random_init cell; comparisons of known cells."""
    try:
        with open(path) as f:
            spec = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise SpecError(invalid_yaml_message(path, err)) from None
    except OSError as err:
        raise SpecError(f"cannot read the sweep spec {path}: {err.strerror}") from None
    fmt = "see `tools/sweep.py --help` for its format"
    if not isinstance(spec, dict):
        raise SpecError(
            f"{path} is {'empty' if spec is None else 'not a mapping'}: a sweep spec names the grid, its output_dir, seeds and cells; {fmt}"
        )
    missing = [k for k in ("name", "output_dir", "seeds", "cells") if k not in spec]
    if missing:
        raise SpecError(f"{path}: the sweep spec lacks {missing}; {fmt}")
    if not (
        isinstance(spec["seeds"], list) and spec["seeds"] and all(isinstance(s, int) and not isinstance(s, bool) for s in spec["seeds"])
    ):
        raise SpecError(f"{path}: seeds = {spec['seeds']!r} must be a non-empty list of integers, e.g. [0, 1, 2]")
    if not (isinstance(spec["cells"], list) and spec["cells"] and all(isinstance(c, dict) for c in spec["cells"])):
        raise SpecError(f"{path}: cells must be a non-empty list of mappings like {{name: k16, config: configs/Shapes/mocov2_r18.yaml}}")
    for i, cell in enumerate(spec["cells"]):
        lacking = [k for k in ("name", "config") if k not in cell]
        if lacking:
            raise SpecError(
                f"{path}: cell {i + 1} ({cell.get('name', 'unnamed')}) lacks {lacking}: each cell needs a name and a config file"
            )
        if not os.path.isfile(os.path.join(REPO_ROOT, cell["config"])):
            raise SpecError(
                f"{path}: cell {cell['name']}: config {cell['config']} does not exist (paths are relative to the repository root)"
            )
    names = [c["name"] for c in spec["cells"]]
    if len(set(names)) != len(names):
        raise SpecError(f"{path}: cell names repeat: {names}")
    if RANDOM_INIT not in names:
        raise SpecError(
            f"{path}: every grid has a cell named '{RANDOM_INIT}' (the same config, evaluated "
            f"without training), e.g. `- {{name: {RANDOM_INIT}, config: {spec['cells'][0]['config']}}}`"
        )
    spec.setdefault("results", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(path))), "results", f"{spec['name']}.csv"))
    spec.setdefault("compare", [[RANDOM_INIT, name] for name in names if name != RANDOM_INIT])
    for pair in spec["compare"]:
        if not isinstance(pair, list) or len(pair) != 2 or any(c not in names for c in pair):
            raise SpecError(f"{path}: compare entry {pair} must name two of the cells {names}")
    curve_x = spec.get("plot", {}).get("curve_x", "iteration")
    if curve_x not in CURVE_X:
        raise SpecError(f"{path}: plot.curve_x = {curve_x!r}; the curve's x axis is one of {list(CURVE_X)}")
    return spec


def monitors(spec: dict) -> Dict[str, tuple]:
    """{CSV column: (metrics.json key, "final" | "tail")} of the spec's `monitors:`."""
    return {name: tuple(how) for name, how in spec.get("monitors", {}).items()}


def expand(spec: dict) -> List[Run]:
    return [Run(spec, cell, seed) for cell in spec["cells"] for seed in spec["seeds"]]


def select(spec: dict, runs: List[Run], seeds: Optional[List[int]], cells: Optional[List[str]]) -> List[Run]:
    """The runs of the given seeds and cells (None: all): one share of a grid, to run the grid on
    several cores or machines at once (each share in its own process, the same output_dir)."""
    names = [c["name"] for c in spec["cells"]]
    unknown = [f"seed {s}" for s in seeds or [] if s not in spec["seeds"]] + [f"cell {c}" for c in cells or [] if c not in names]
    if unknown:
        raise SpecError(f"{spec['path']} has no {', '.join(unknown)}: its seeds are {spec['seeds']}, its cells {names}")
    return [r for r in runs if (seeds is None or r.seed in seeds) and (cells is None or r.cell in cells)]


def stage_cfg(config_file: str, opts):
    """The merged (not yet scheduled) config of one stage; raises on a bad key or value."""
    return setup_cfg(argparse.Namespace(config_file=os.path.join(REPO_ROOT, config_file), opts=[str(v) for v in opts]))


def git_state() -> dict:
    """{"commit": full hash of HEAD, "dirty": tracked files differ from it} of the checkout that runs."""
    provenance = run_provenance(REPO_ROOT)
    return {"commit": provenance["commit"], "dirty": provenance["dirty"] is not False}


def pixels_per_step(cfg) -> int:
    """Pixels through the model a step: the s/it of one run scales to another's by this ratio."""
    return cfg.SOLVER.IMS_PER_BATCH * cfg.INPUT.NUM_VIEWS * cfg.INPUT.CROP_SIZE**2


# -------------------------------------------------------------------------------- reading a run's files
def read_value(records: List[dict], key: str, how: str, max_iter: int) -> Optional[float]:
    """A run's `key`: "final" its last value if logged at the end of training (None otherwise),
    "tail" the mean of its values in the last TAIL_FRACTION of the iterations (at least the last one)."""
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
    records, _ = read_metrics(os.path.join(stage_dir, "metrics.json"))  # a line cut by a kill is skipped
    values = {name: read_value(records, key, how, max_iter) for name, (key, how) in metrics.items()}
    if any(values[name] is None and key in EVALUATED_KEYS for name, (key, _) in metrics.items()):
        evaluated = evaluate_final_weights(stage_dir)
        values.update({name: float(evaluated[key]) for name, (key, _) in metrics.items() if values[name] is None and key in evaluated})
    times = [r["time"] for r in records if "time" in r]
    return {"values": {k: v for k, v in values.items() if v is not None}, "s_per_iter": statistics.median(times) if times else None}


# ------------------------------------------------------------------------------------------ running
def run_stage(run: Run, stage) -> int:
    """One `train_net.py --resume` subprocess (the pretraining on the cell's num_gpus processes, the
    linear probe on one), or for random_init `sweep.py --evaluate-init`; returns its exit code."""
    name, config_file, opts = stage
    processes = run.num_gpus if name == "pretrain" else 1
    if name == "pretrain" and not run.trains:
        cmd = [sys.executable, os.path.abspath(__file__), "--evaluate-init", os.path.join(REPO_ROOT, config_file)]
    else:
        cmd = [
            sys.executable,
            os.path.join(REPO_ROOT, "tools", "train_net.py"),
            "--config-file",
            os.path.join(REPO_ROOT, config_file),
            "--resume",
            "--num-gpus",
            str(processes),
        ]
    cmd += [*[str(v) for v in opts], "OUTPUT_DIR", os.path.join(run.dir, name)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))}
    return subprocess.run(cmd, env=env).returncode


def stage_commands(run: Run) -> List[list]:
    """[[stage, config, *opts]] of a run as strings: what its result.json was computed from."""
    return [[name, config, *[str(v) for v in opts]] for name, config, opts in run.stages()]


def with_current_key_names(stages: List[list]) -> List[list]:
    """Stage commands ([stage, config, KEY, VALUE, ...]) with each KEY registered as renamed under its new name."""
    cfg = get_cfg()
    return [[name, config, *[cfg.renamed_to(v) if i % 2 == 0 else v for i, v in enumerate(opts)]] for name, config, *opts in stages]


def check_unchanged(runs: List[Run]) -> None:
    """Refuse a spec whose finished runs were made from other cell settings than it now gives (a key
    stored under a name that was renamed since counts as the same key)."""
    changed = []
    for run in runs:
        if os.path.isfile(run.result_file):
            with open(run.result_file) as f:
                stored = json.load(f).get("stages")
            if stored is not None and with_current_key_names(stored) != stage_commands(run):
                changed.append(f"{run.cell} seed {run.seed}")
    if changed:
        raise SpecError(
            f"{len(changed)} finished run(s) were made with other settings than the spec now gives "
            f"({', '.join(changed[:4])}{', ...' if len(changed) > 4 else ''}): their results would be "
            f"labelled with the new values. Restore the spec, or delete those runs' folders under "
            f"the output_dir to run them again."
        )


def evaluate_init(config_file: str, opts: List[str]) -> None:
    """Evaluate the seeded initial weights of a config (the random_init cell): OUTPUT_DIR gets the
    config, the log and a metrics.json with one record at iteration 0, as a training run would."""
    args = argparse.Namespace(config_file=config_file, opts=opts, resume=True)
    cfg = setup_cfg(args)
    cfg.SOLVER.MAX_ITER = 0
    default_setup(cfg, args)
    model = DefaultTrainer.build_model(cfg)  # after default_setup's seeding: a run's initial weights
    results = DefaultTrainer.test(cfg, model)
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    with atomic_write(os.path.join(cfg.OUTPUT_DIR, "metrics.json"), "w") as f:
        f.write(json.dumps({"iteration": 0, **results}) + "\n")


def curve_points(stage_dir: str, run: Run) -> List[dict]:
    """Every evaluation of a pretraining run: {cell, seed, iteration, knn_top1, linear_top1}."""
    points: Dict[int, dict] = {}
    for record in read_metrics(os.path.join(stage_dir, "metrics.json"))[0]:
        for name, (key, _) in ACCURACY_METRICS.items():
            if key in record:
                points.setdefault(record["iteration"], {})[name] = float(record[key])
    return [{"cell": run.cell, "seed": run.seed, "iteration": it, **values} for it, values in sorted(points.items())]


def execute(run: Run, max_iters: Dict[str, int], extra_monitors: Dict[str, tuple], images_per_step: int) -> dict:
    """Run (or continue) both stages of `run`, then write and return its result.json, with the commit
    and tree state of the code that ran it."""
    start = time.perf_counter()
    before = git_state()
    result = {
        "grid": run.grid,
        "cell": run.cell,
        "seed": run.seed,
        "labels": run.labels,
        "values": {},
        "iterations": max_iters["pretrain"] if run.trains else 0,
    }
    result["images_seen"] = result["iterations"] * images_per_step
    for stage in run.stages():
        code = run_stage(run, stage)
        if code != 0:
            raise SystemExit(
                f"{run.cell} seed {run.seed}: the {stage[0]} stage exited with {code}; "
                f"see {os.path.join(run.dir, stage[0], 'log.txt')}. Rerun the sweep to continue."
            )
        is_pretrain = stage[0] == "pretrain"
        # with a linear_eval stage, linear_top1 is that stage's; otherwise the LinearProbe evaluator's
        accuracy = {k: v for k, v in ACCURACY_METRICS.items() if not (run.linear and k in LINEAR_METRICS)}
        metrics = {**accuracy, **extra_monitors} if is_pretrain else LINEAR_METRICS
        max_iter = result["iterations"] if is_pretrain else max_iters[stage[0]]
        collected = collect_stage(os.path.join(run.dir, stage[0]), metrics, max_iter)
        result["values"].update(collected["values"])
        result[f"{stage[0]}_s_per_iter"] = collected["s_per_iter"]
    result["curve"] = curve_points(os.path.join(run.dir, "pretrain"), run)
    result["stages"] = stage_commands(run)
    result["wall_s"] = time.perf_counter() - start
    after = git_state()
    result["commit"], result["dirty"] = before["commit"], before["dirty"] or after != before
    with atomic_write(run.result_file, "w") as f:  # a kill never leaves half a result
        json.dump(result, f, indent=2)
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
    """{run dir: {stage: (iterations, pixels a step)}, plus "images_per_step"}; merging every config
    first makes a bad key or value fail before anything runs."""
    costs = {}
    for run in runs:
        costs[run.dir] = {}
        for name, config_file, opts in run.stages():
            cfg = stage_cfg(config_file, opts)
            if cfg.SOLVER.MAX_ITER <= 0:
                raise SpecError(f"{run.cell}: set SOLVER.MAX_ITER in the spec (the sweep counts iterations)")
            iterations = cfg.SOLVER.MAX_ITER if (name != "pretrain" or run.trains) else 0
            costs[run.dir][name] = (iterations, pixels_per_step(cfg))
            if name == "pretrain":
                costs[run.dir]["images_per_step"] = cfg.SOLVER.IMS_PER_BATCH
    return costs


def stage_costs(run_costs: dict) -> Dict[str, tuple]:
    """{stage: (iterations, pixels a step)} of one run's entry of plan()."""
    return {name: cost for name, cost in run_costs.items() if name != "images_per_step"}


def check_provenance(spec: dict, state: dict, allow_mixed: bool) -> None:
    """Refuse to add rows from a dirty tree, or from another commit than the grid's CSV holds."""
    if allow_mixed:
        return
    if state["dirty"]:
        raise SystemExit(
            f"The checkout has uncommitted changes to tracked files: rows of {spec['name']} could not "
            f"be traced to a commit. Commit (or stash) them, or pass --allow-mixed."
        )
    if os.path.isfile(spec["results"]):
        commits = {r["commit"] for r in sweep_results.read_rows(spec["results"])}
        if commits - {state["commit"]}:
            raise SystemExit(
                f"{spec['results']} holds rows of commit(s) {sorted(c[:12] for c in commits)}, this "
                f"checkout is {state['commit'][:12]}: re-run the whole grid into a fresh --output-dir, "
                f"or pass --allow-mixed (the table will say that its commits are mixed)."
            )


def run_grid(spec: dict, runs: List[Run]) -> None:
    costs = plan(runs)
    check_unchanged(runs)
    stages = {d: stage_costs(c) for d, c in costs.items()}
    pending = [r for r in runs if not os.path.isfile(r.result_file)]
    print(
        f"Sweep {spec['name']}: {len(runs)} runs ({len({r.cell for r in runs})} cells x {len({r.seed for r in runs})} seeds), "
        f"{len(runs) - len(pending)} finished, {len(pending)} to run -> {spec['output_dir']}",
        flush=True,
    )
    measured = next((r for r in runs if r.trains and os.path.isfile(r.result_file)), None)
    for i, run in enumerate(pending):
        if measured is not None:
            with open(measured.result_file) as f:
                reference = json.load(f)
            left = sum(estimate_seconds(reference, stages[measured.dir], stages[r.dir]) for r in pending[i:])
            print(
                f"[sweep] estimated time for the {len(pending) - i} runs left: {format_duration(left)} "
                f"(from {measured.cell} seed {measured.seed}: {reference['pretrain_s_per_iter'] or 0:.2f} s/it, "
                f"{format_duration(reference['wall_s'])} a run)",
                flush=True,
            )
        print(f"[sweep] run {len(runs) - len(pending) + i + 1}/{len(runs)}: {run.cell} seed {run.seed}", flush=True)
        execute(run, {name: it for name, (it, _) in stages[run.dir].items()}, monitors(spec), costs[run.dir]["images_per_step"])
        if measured is None and run.trains:
            measured = run


# ------------------------------------------------------------------------------------ the summaries
def load_results(runs: List[Run]) -> List[dict]:
    """The finished runs' result.json, labelled as the spec labels their cells now (labels only
    name a cell in tables and figures; a relabelled spec needs no re-run)."""
    results = []
    for run in runs:
        if os.path.isfile(run.result_file):
            with open(run.result_file) as f:
                results.append({**json.load(f), "labels": run.labels})
    return results


def curve_path(spec: dict) -> str:
    return os.path.splitext(spec["results"])[0] + "_curve.csv"


def write_results(spec: dict, results: List[dict], allow_mixed: bool) -> None:
    """The grid's committed CSV (and with `curve:` its curve CSV) from the finished runs' result.json."""
    commits = {(r["commit"], r["dirty"]) for r in results}
    if not allow_mixed and (len(commits) > 1 or any(dirty for _, dirty in commits)):
        raise SystemExit(
            f"The finished runs of {spec['name']} come from {len(commits)} commit/tree states "
            f"{sorted((c[:12], d) for c, d in commits)}; pass --allow-mixed to write them together."
        )
    os.makedirs(os.path.dirname(spec["results"]) or ".", exist_ok=True)
    labels = sorted({k for r in results for k in r["labels"]})
    sweep_results.write_rows(spec["results"], results, labels, sorted(monitors(spec)))
    if spec.get("curve"):
        points = [{**p, "grid": r["grid"], "commit": r["commit"]} for r in results for p in r["curve"]]
        sweep_results.write_curve(curve_path(spec), points)
    print(f"Results of {len(results)} runs: {spec['results']}", flush=True)


def readme_block(spec: dict) -> str:
    """The README block of the grid, computed from its committed CSV only (the "not run" note when
    there is no CSV yet); figures are linked from results/ beside the README."""
    if not os.path.isfile(spec["results"]):
        return (
            f"*Not run yet.* `python tools/sweep.py {spec['path']}` runs the grid and writes "
            f"`{os.path.relpath(spec['results'], REPO_ROOT)}`; `--update-readme` puts its table here."
        )
    rows = sweep_results.read_rows(spec["results"])
    cells = [c["name"] for c in spec["cells"]]
    labels = sorted({k for c in spec["cells"] for k in c.get("labels", {})})
    csv_rel = os.path.relpath(spec["results"], REPO_ROOT)
    text = sweep_results.markdown_table(rows, cells, labels, sorted(monitors(spec)), spec["compare"], csv_rel)
    missing = [
        f"{c} ({len(spec['seeds']) - n} of {len(spec['seeds'])} seeds)"
        for c in cells
        if (n := len({r["seed"] for r in rows if r["cell"] == c})) < len(spec["seeds"])
    ]
    if missing:
        text += (
            f"\n\n**Not run yet**: {', '.join(missing)}; `python tools/sweep.py {spec['path']}` continues the grid (at the CSV's commit)."
        )
    text += f"\n\n![{spec['name']}](results/{spec['name']}.png)"
    if spec.get("curve") and os.path.isfile(curve_path(spec)):
        text += f"\n\n![{spec['name']} curve](results/{spec['name']}_curve.png)"
    return text


def draw_figures(spec: dict, figure_dir: str) -> None:
    """The grid's figure (and with `curve:` its curve) from the committed CSVs, into figure_dir."""
    if not os.path.isfile(spec["results"]):
        return
    os.makedirs(figure_dir, exist_ok=True)
    cells = [c["name"] for c in spec["cells"]]
    rows = sweep_results.read_rows(spec["results"])
    plot = spec.get("plot", {})
    sweep_results.plot_grid(rows, cells, plot, spec["name"], os.path.join(figure_dir, f"{spec['name']}.png"))
    if spec.get("curve") and os.path.isfile(curve_path(spec)):
        images_per_step = {r["cell"]: r["images_seen"] // r["iterations"] for r in rows if r["iterations"]}
        sweep_results.plot_curves(
            sweep_results.read_curve(curve_path(spec)),
            cells,
            spec["name"],
            os.path.join(figure_dir, f"{spec['name']}_curve.png"),
            images_per_step if plot.get("curve_x") == "images_seen" else None,
        )


def update_readme(path: str, name: str, table: str) -> None:
    """Replace the text between <!-- sweep:NAME --> and <!-- /sweep:NAME --> in `path` with `table`."""
    replace_marked_block(path, f"<!-- sweep:{name} -->", f"<!-- /sweep:{name} -->", table)


def main(argv=None) -> None:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--evaluate-init":
        return evaluate_init(sys.argv[2], sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", help="the grid's YAML file")
    parser.add_argument("--output-dir", help="instead of the spec's output_dir")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and what is finished; run nothing")
    parser.add_argument(
        "--collect", action="store_true", help="write the CSV from the finished runs only; run nothing (a grid stopped part way)"
    )
    parser.add_argument("--table", action="store_true", help="print the README block of the committed CSV")
    parser.add_argument(
        "--update-readme", action="store_true", help="put that block between the sweep markers of the spec's `readme:` file"
    )
    parser.add_argument("--allow-mixed", action="store_true", help="add rows from a dirty tree or another commit to the grid's CSV")
    parser.add_argument("--seeds", type=int, nargs="+", help="run (or list) only these of the spec's seeds")
    parser.add_argument("--cells", nargs="+", help="run (or list) only these of the spec's cells")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    spec["path"] = os.path.relpath(os.path.abspath(args.spec), REPO_ROOT)
    if args.output_dir:
        spec["output_dir"] = args.output_dir
    runs = expand(spec)
    share = select(spec, runs, args.seeds, args.cells)
    if args.dry_run:
        costs = plan(share)
        for run in share:
            iters = ", ".join(f"{name} {it} it" for name, (it, _) in stage_costs(costs[run.dir]).items())
            print(f"{'done' if os.path.isfile(run.result_file) else 'todo'}  {run.cell:<16} seed {run.seed}  {iters}  {run.pretrain[1]}")
        return
    if args.collect:
        write_results(spec, load_results(runs), args.allow_mixed)
    elif not (args.table or args.update_readme):
        check_provenance(spec, git_state(), args.allow_mixed)
        os.makedirs(spec["output_dir"], exist_ok=True)
        try:
            run_grid(spec, share)
        except KeyboardInterrupt:
            sys.exit("\nStopped. Finished runs are kept; the same command continues the grid.")
        if len(share) < len(runs):
            print(f"This share of {spec['name']} is done; once every share is, `--collect` writes {spec['results']}.")
            return
        write_results(spec, load_results(runs), args.allow_mixed)
    readme = os.path.join(REPO_ROOT, spec["readme"]) if spec.get("readme") else None
    if args.update_readme and not readme:
        raise SystemExit(f"{spec['path']} names no `readme:` to update")
    text = readme_block(spec)
    draw_figures(spec, os.path.join(os.path.dirname(readme), "results") if readme else spec["output_dir"])
    if args.update_readme:
        update_readme(readme, spec["name"], text)
    print(text)


if __name__ == "__main__":
    with exit_on_user_error():
        main()
