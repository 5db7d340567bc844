"""tools/sweep.py on a tiny grid (random init + 2 cells x 2 seeds, 3 iterations, 32 px Shapes): the
results CSV against each run's own metrics.json, mean / std against numpy in float64, the figure,
and resuming."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))
import sweep  # noqa: E402
import sweep_results  # noqa: E402


def _spec(shapes_root, out):
    data = [
        "DATASETS.ROOT",
        shapes_root,
        "DATASETS.SHAPES.NUM_TRAIN",
        64,
        "DATASETS.SHAPES.NUM_VAL",
        32,
        "DATASETS.SHAPES.IMAGE_SIZE",
        32,
        "INPUT.CROP_SIZE",
        32,
        "INPUT.TEST_RESIZE",
        32,
        "DATALOADER.NUM_WORKERS",
        0,
        "TEST.IMS_PER_BATCH",
        32,
        "LOG_PERIOD",
        1,
        "SOLVER.IMS_PER_BATCH",
        16,
    ]
    return {
        "name": "tiny",
        "output_dir": out,
        "seeds": [0, 1],
        "data_opts": data,
        "opts": [
            "MODEL.PROJECTOR.HIDDEN_DIM",
            64,
            "MODEL.PROJECTOR.OUT_DIM",
            32,
            "SOLVER.MAX_ITER",
            3,
            "SOLVER.CHECKPOINT_PERIOD",
            2,
            "TEST.EVAL_PERIOD",
            0,
            "TEST.EVAL_AT_START",
            False,
        ],
        "linear_eval": {"config": "configs/Shapes/linear_eval_r18.yaml", "opts": ["SOLVER.MAX_ITER", 2, "SOLVER.STEPS", "(1,)"]},
        "results": os.path.join(out, "results", "tiny.csv"),
        "monitors": {"mi_bound": ["eqco/mi_bound", "tail"], "grad_norm_q": ["eqco/grad_norm_q", "tail"]},
        "cells": [
            {"name": "random_init", "config": "projects/EqCo/configs/Shapes/mocov2_r18_k16.yaml"},
            {"name": "k16", "config": "projects/EqCo/configs/Shapes/mocov2_r18_k16.yaml", "labels": {"K": 16, "loss": "InfoNCE"}},
            {"name": "k16_eqco", "config": "projects/EqCo/configs/Shapes/mocov2_r18_k16_eqco.yaml", "labels": {"K": 16, "loss": "EqCo"}},
        ],
        "plot": {"series": "loss", "metrics": ["knn_top1", "mi_bound"]},
    }


def _sweep(spec_file):
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "tools", "sweep.py"), spec_file, "--allow-mixed"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def _records(run_dir, stage):
    with open(os.path.join(run_dir, stage, "metrics.json")) as f:
        return [json.loads(line) for line in f]


def _expected(run_dir):
    """A run's numbers read straight from its metrics files: final kNN (iteration 3), final linear
    top-1 (iteration 2), and the MI bound logged at the last training iteration (2)."""
    pretrain, linear = _records(run_dir, "pretrain"), _records(run_dir, "linear")
    return {
        "knn_top1": [r["knn/top1"] for r in pretrain if r["iteration"] == 3 and "knn/top1" in r][-1],
        "linear_top1": [r["top1"] for r in linear if r["iteration"] == 2 and "top1" in r][-1],
        "mi_bound": [r["eqco/mi_bound"] for r in pretrain if r["iteration"] == 2 and "eqco/mi_bound" in r][-1],
    }


def _csv_rows(out):
    return {(row["cell"], row["seed"]): row for row in sweep_results.read_rows(os.path.join(out, "results", "tiny.csv"))}


@pytest.mark.slow  # 12 train_net.py processes, 2 evaluations of the initial weights
def test_sweep_collects_summarizes_plots_and_resumes(shapes_root, tmp_path):
    out = str(tmp_path / "sweep")
    spec_file = str(tmp_path / "tiny.yaml")
    with open(spec_file, "w") as f:
        yaml.safe_dump(_spec(shapes_root, out), f)
    _sweep(spec_file)

    rows = _csv_rows(out)
    assert sorted(rows) == [("k16", 0), ("k16", 1), ("k16_eqco", 0), ("k16_eqco", 1), ("random_init", 0), ("random_init", 1)]
    expected = {key: _expected(os.path.join(out, key[0], f"seed{key[1]}")) for key in rows if key[0] != "random_init"}
    for key, values in expected.items():
        row = rows[key]
        for metric, value in values.items():
            got = row[metric] if metric in row else row["extra"][metric]
            assert abs(got - value) <= 5e-5, (key, metric)  # the CSV keeps 4 decimals
        assert row["extra"]["grad_norm_q"] > 0 and row["extra"]["loss"] == ("EqCo" if "eqco" in key[0] else "InfoNCE")
        assert (row["iterations"], row["images_seen"]) == (3, 3 * 16) and len(row["commit"]) == 40
    for seed in (0, 1):  # the initial weights of the same config, evaluated: kNN and the linear stage
        init = _records(os.path.join(out, "random_init", f"seed{seed}"), "pretrain")
        assert rows[("random_init", seed)]["knn_top1"] == init[0]["knn/top1"] and init[0]["iteration"] == 0
        assert rows[("random_init", seed)]["iterations"] == 0

    spec = sweep.load_spec(spec_file)
    spec["path"] = spec_file
    table = sweep.readme_block(spec)
    for cell in ("k16", "k16_eqco"):
        for metric in ("knn_top1", "mi_bound"):
            values = np.array([expected[(cell, s)][metric] for s in (0, 1)], dtype=np.float64)
            digits = 1 if metric == "knn_top1" else 2
            assert f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}" in table
    with open(os.path.join(out, "tiny.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    # A second call runs nothing: every run has its result.json.
    finished = {
        p: os.path.getmtime(os.path.join(out, *p.split("/"), "pretrain", "metrics.json"))
        for p in ("k16/seed0", "k16/seed1", "k16_eqco/seed0", "k16_eqco/seed1")
    }
    assert "0 to run" in _sweep(spec_file)

    # k16 seed 1 killed after its checkpoint at iteration 2: it continues from there.
    killed = os.path.join(out, "k16", "seed1")
    os.remove(os.path.join(killed, "result.json"))
    os.remove(os.path.join(killed, "pretrain", "model_final.pth"))
    with open(os.path.join(killed, "pretrain", "last_checkpoint"), "w") as f:
        f.write("model_0000001.pth")
    kept = [r for r in _records(killed, "pretrain") if r["iteration"] < 2]
    with open(os.path.join(killed, "pretrain", "metrics.json"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
    # k16_eqco seed 0 killed during its final kNN evaluation: the sweep evaluates model_final.pth.
    unevaluated = os.path.join(out, "k16_eqco", "seed0")
    os.remove(os.path.join(unevaluated, "result.json"))
    records = [{k: v for k, v in r.items() if k != "knn/top1"} for r in _records(unevaluated, "pretrain")]
    with open(os.path.join(unevaluated, "pretrain", "metrics.json"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)

    assert "2 to run" in _sweep(spec_file)
    with open(os.path.join(killed, "pretrain", "log.txt")) as f:
        assert "Resuming at iteration 2" in f.read()
    rows_after = _csv_rows(out)
    assert float(rows_after[("k16", 1)]["knn_top1"]) == _expected(killed)["knn_top1"]
    assert abs(float(rows_after[("k16_eqco", 0)]["knn_top1"]) - expected[("k16_eqco", 0)]["knn_top1"]) < 1e-9
    for p in ("k16/seed0", "k16_eqco/seed1"):  # untouched runs were not run again
        assert os.path.getmtime(os.path.join(out, *p.split("/"), "pretrain", "metrics.json")) == finished[p]


def test_read_value_final_needs_the_end_and_tail_averages_the_last_tenth():
    records = [{"iteration": i, "m": float(i)} for i in range(20)]
    records += [{"iteration": 20, "knn/top1": 50.0}, {"iteration": 19, "m": 100.0}]  # resumed: 19 logged again
    assert sweep.read_value(records, "knn/top1", "final", max_iter=20) == 50.0
    assert sweep.read_value(records, "knn/top1", "final", max_iter=40) is None  # run not at its end
    assert sweep.read_value(records, "m", "tail", max_iter=20) == (18.0 + 100.0) / 2  # iterations 18, 19
    assert sweep.read_value(records, "absent", "tail", max_iter=20) is None


def test_mean_and_sample_std_match_numpy_float64():
    rng = np.random.default_rng(0)
    for n in (3, 5):
        values = rng.uniform(20, 80, size=n)
        stat = sweep_results.mean_std(values.tolist())
        assert stat["n"] == n
        assert np.isclose(stat["mean"], values.mean(), rtol=1e-15)
        assert np.isclose(stat["std"], values.std(ddof=1), rtol=1e-13)


def test_update_readme_replaces_between_its_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- sweep:g -->\nold\ntable\n<!-- /sweep:g -->\noutro\n")
    sweep.update_readme(str(readme), "g", "| new |")
    assert readme.read_text() == "intro\n<!-- sweep:g -->\n| new |\n<!-- /sweep:g -->\noutro\n"
    with pytest.raises(sweep.UserError, match="lacks the markers <!-- sweep:other --> ... <!-- /sweep:other -->"):
        sweep.update_readme(str(readme), "other", "| x |")
    assert readme.read_text() == "intro\n<!-- sweep:g -->\n| new |\n<!-- /sweep:g -->\noutro\n"


def test_every_grid_spec_merges_and_has_three_seeds():
    """Each grid spec: >= 3 seeds (unless it declares itself a `search`, which no claim cites),
    configs and overrides that merge, known plot metrics."""
    specs = sorted(
        glob.glob(os.path.join(REPO_ROOT, "projects", "*", "sweeps", "*.yaml"))
        + glob.glob(os.path.join(REPO_ROOT, "tools", "sweeps", "*.yaml"))
    )
    assert len(specs) >= 9
    for path in specs:
        spec = sweep.load_spec(path)
        assert len(spec["seeds"]) >= 3 or spec.get("search") is True, path
        runs = [run for run in sweep.expand(spec) if run.seed == spec["seeds"][0]]
        costs = sweep.plan(runs)
        for run in runs:  # only the random_init cell has no training iterations
            assert all((it > 0) == (name != "pretrain" or run.trains) for name, (it, _) in sweep.stage_costs(costs[run.dir]).items()), (
                path,
                run.cell,
            )
        known = {*sweep.ACCURACY_METRICS, *sweep.LINEAR_METRICS, *sweep.monitors(spec)}
        assert set(spec.get("plot", {}).get("metrics", [])) <= known, path


def test_estimate_scales_the_measured_run_by_iterations_and_pixels():
    measured = {"wall_s": 100.0, "pretrain_s_per_iter": 0.5, "linear_s_per_iter": 0.1}
    measured_cost = {"pretrain": (100, 1000), "linear": (50, 500)}  # 50 s + 5 s of steps, 45 s besides
    cost = {"pretrain": (200, 2000), "linear": (50, 500)}
    assert sweep.estimate_seconds(measured, measured_cost, cost) == 45.0 + 0.5 * 200 * 2 + 0.1 * 50


_GOOD_CELLS = (
    "cells:\n  - {name: random_init, config: configs/Shapes/mocov2_r18.yaml}\n  - {name: moco, config: configs/Shapes/mocov2_r18.yaml}\n"
)


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: g\noutput_dir: out\nseeds: [0, 1\n" + _GOOD_CELLS, "is not valid YAML"),
        ("", "is empty"),
        ("name: g\noutput_dir: out\nseeds: 3\n" + _GOOD_CELLS, "seeds = 3 must be a non-empty list of integers"),
        ("name: g\noutput_dir: out\nseeds: [0]\ncells:\n  - {name: random_init}\n", "lacks ['config']"),
        ("name: g\noutput_dir: out\nseeds: [0]\ncells:\n  - {name: random_init, config: nope.yaml}\n", "does not exist"),
        (
            "name: g\noutput_dir: out\nseeds: [0]\ncells:\n  - {name: moco, config: configs/Shapes/mocov2_r18.yaml}\n",
            "every grid has a cell named 'random_init'",
        ),
        ("name: g\noutput_dir: out\nseeds: [0]\ncompare: [[moco, other]]\n" + _GOOD_CELLS, "compare entry"),
        ("name: g\noutput_dir: out\nseeds: [0]\nplot: {curve_x: epochs}\n" + _GOOD_CELLS, "plot.curve_x = 'epochs'"),
    ],
)
def test_a_bad_spec_is_refused_naming_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(sweep.SpecError) as err:
        sweep.load_spec(str(path))
    assert message in str(err.value)


def test_a_bad_spec_prints_a_short_error_without_traceback(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: g\noutput_dir: out\nseeds: 3\n" + _GOOD_CELLS)
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "tools", "sweep.py"), str(path), "--dry-run"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO_ROOT},
        timeout=300,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("ERROR: ") and "seeds = 3" in proc.stderr and len(proc.stderr.splitlines()) <= 15


def test_a_finished_run_whose_cell_was_edited_is_refused(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(f"name: g\noutput_dir: {tmp_path / 'out'}\nseeds: [0]\n" + _GOOD_CELLS)
    run = [r for r in sweep.expand(sweep.load_spec(str(spec_file))) if r.cell == "moco"][0]
    os.makedirs(run.dir)
    with open(run.result_file, "w") as f:
        json.dump({"stages": sweep.stage_commands(run)}, f)
    sweep.check_unchanged([run])  # as run: fine
    spec_file.write_text(
        spec_file.read_text().replace(
            "  - {name: moco, config: configs/Shapes/mocov2_r18.yaml}",
            "  - {name: moco, config: configs/Shapes/mocov2_r18.yaml, opts: [SOLVER.BASE_LR, 0.5]}",
        )
    )
    edited = [r for r in sweep.expand(sweep.load_spec(str(spec_file))) if r.cell == "moco"][0]
    with pytest.raises(sweep.SpecError, match="other settings than the spec now gives"):
        sweep.check_unchanged([edited])


def test_a_finished_run_stored_with_a_key_renamed_since_is_unchanged(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(f"name: g\noutput_dir: {tmp_path / 'out'}\nseeds: [0]\nopts: [INPUT.BATCHED_AUGMENTATION, True]\n" + _GOOD_CELLS)
    run = [r for r in sweep.expand(sweep.load_spec(str(spec_file))) if r.cell == "moco"][0]
    os.makedirs(run.dir)
    stored = [[v.replace("BATCHED_AUGMENTATION", "GPU_AUGMENTATION") for v in stage] for stage in sweep.stage_commands(run)]
    assert "INPUT.GPU_AUGMENTATION" in stored[0]  # as a run made before the rename stored it
    with open(run.result_file, "w") as f:
        json.dump({"stages": stored}, f)
    sweep.check_unchanged([run])
    stored[0][stored[0].index("INPUT.GPU_AUGMENTATION") + 1] = "False"
    with open(run.result_file, "w") as f:
        json.dump({"stages": stored}, f)
    with pytest.raises(sweep.SpecError, match="other settings than the spec now gives"):
        sweep.check_unchanged([run])


def test_collect_writes_the_finished_runs_only_and_the_table_names_the_rest(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    results = tmp_path / "g.csv"
    # moco relabelled after its runs: the table names it by the spec's label (K 16), not the run's (K 4)
    cells = _GOOD_CELLS.replace(
        "{name: moco, config: configs/Shapes/mocov2_r18.yaml}", "{name: moco, config: configs/Shapes/mocov2_r18.yaml, labels: {K: 16}}"
    )
    spec_file.write_text(f"name: g\noutput_dir: {tmp_path / 'out'}\nresults: {results}\nseeds: [0, 1]\n" + cells)
    runs = sweep.expand(sweep.load_spec(str(spec_file)))
    finished = [r for r in runs if not (r.cell == "moco" and r.seed == 1)]
    for i, run in enumerate(finished):  # hand-made result.json files of 3 of the 4 runs
        os.makedirs(run.dir)
        with open(run.result_file, "w") as f:
            json.dump(
                {
                    "grid": "g",
                    "cell": run.cell,
                    "seed": run.seed,
                    "commit": "c" * 40,
                    "dirty": False,
                    "iterations": 0,
                    "images_seen": 0,
                    "wall_s": 1.0,
                    "labels": {"K": 4} if run.cell == "moco" else {},
                    "values": {"knn_top1": 40.0 + i, "linear_top1": 50.0 + i},
                    "curve": [],
                },
                f,
            )
    sweep.main([str(spec_file), "--collect"])  # runs nothing: moco seed 1 has no result and stays so
    rows = sweep_results.read_rows(str(results))
    assert sorted((r["cell"], r["seed"], r["knn_top1"]) for r in rows) == [
        ("moco", 0, 42.0),
        ("random_init", 0, 40.0),
        ("random_init", 1, 41.0),
    ]
    assert [r["extra"]["K"] for r in rows if r["cell"] == "moco"] == [16]
    assert not os.path.exists(runs[-1].dir)
    spec = sweep.load_spec(str(spec_file))
    spec["path"] = "spec.yaml"
    assert "**Not run yet**: moco (1 of 2 seeds);" in sweep.readme_block(spec)


def test_a_curve_in_images_seen_aligns_cells_of_different_batch_size():
    # two seeds of a 64-image cell at iterations 100/200 and one 256-image cell at iteration 100:
    # by hand, 64 x 100 = 6.4 and 64 x 200 = 12.8 thousand images, 256 x 100 = 25.6 thousand
    rows = [
        {"cell": "n64", "seed": 0, "iteration": 100, "knn_top1": 40.0},
        {"cell": "n64", "seed": 1, "iteration": 100, "knn_top1": 50.0},
        {"cell": "n64", "seed": 0, "iteration": 200, "knn_top1": 60.0},
        {"cell": "n64", "seed": 1, "iteration": 200, "knn_top1": 70.0},
        {"cell": "n256", "seed": 0, "iteration": 100, "knn_top1": 80.0},
    ]
    assert sweep_results.curve_series(rows, "n64", "knn_top1", 64) == ([6.4, 12.8], [45.0, 65.0], [40.0, 60.0], [50.0, 70.0])
    assert sweep_results.curve_series(rows, "n256", "knn_top1", 256) == ([25.6], [80.0], [80.0], [80.0])
    assert sweep_results.curve_series(rows, "n64", "knn_top1") == ([100.0, 200.0], [45.0, 65.0], [40.0, 60.0], [50.0, 70.0])


def test_a_share_of_the_grid_runs_only_its_seeds_and_cells_and_writes_no_csv(tmp_path, monkeypatch, capsys):
    spec_file = tmp_path / "spec.yaml"
    results = tmp_path / "g.csv"
    spec_file.write_text(f"name: g\noutput_dir: {tmp_path / 'out'}\nresults: {results}\nseeds: [0, 1, 2]\n" + _GOOD_CELLS)
    ran = []
    monkeypatch.setattr(sweep, "run_grid", lambda spec, runs: ran.extend((r.cell, r.seed) for r in runs))
    sweep.main([str(spec_file), "--seeds", "2", "0", "--cells", "moco", "--allow-mixed"])
    assert ran == [("moco", 0), ("moco", 2)]
    assert not results.exists() and "--collect" in capsys.readouterr().out  # the other shares are not done

    sweep.main([str(spec_file), "--dry-run", "--seeds", "1"])
    listed = [line.split()[1:4] for line in capsys.readouterr().out.splitlines()]
    assert listed == [["random_init", "seed", "1"], ["moco", "seed", "1"]]

    with pytest.raises(sweep.SpecError, match=r"has no seed 5, cell mocov3: its seeds are \[0, 1, 2\]"):
        sweep.main([str(spec_file), "--seeds", "5", "--cells", "mocov3"])
