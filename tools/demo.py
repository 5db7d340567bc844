#!/usr/bin/env python
"""The demo behind `make demo`, on the built-in Shapes data and the CPU:

1. pretrain a ResNet-18 with SiMo (kNN accuracy logged before and after),
2. linear evaluation of the pretrained and of the random-init backbone,
3. detectron2 Faster R-CNN fine-tuning of both backbones, COCO box AP,

then print the three comparisons side by side and draw the curves.

    python tools/demo.py --output-dir output/demo [--skip-detection] [KEY VALUE ...]
    python tools/demo.py --update-readme      # README.md's demo table <- output/demo/results.json

KEY VALUE pairs override the pretraining config. Finished steps are not run again:
their results are kept in OUTPUT_DIR/results.json, with the provenance of the run (commit, uncommitted
changes, torch, machine); finishing them from other code is refused.
"""

import argparse
import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from ssl_lab.config import get_cfg  # noqa: E402
from ssl_lab.engine import DefaultTrainer, default_setup, setup_cfg  # noqa: E402
from ssl_lab.utils.errors import UserError, exit_on_user_error  # noqa: E402
from ssl_lab.utils.files import atomic_write, replace_marked_block  # noqa: E402
from ssl_lab.utils.metrics_file import read_metrics  # noqa: E402
from ssl_lab.utils.provenance import run_provenance  # noqa: E402

PRETRAIN_CONFIG = "projects/SiMo/configs/shapes_r18.yaml"
# Sized for a few minutes on 2 CPU cores: 32 px images, 500 iterations, every other key of the
# batch as a negative (EqCo keeps the loss equivalent to the paper's K = 16 with alpha = 256),
# and the batched augmentation, which leaves the cores to the model (0.40 instead of 0.55 s/it).
DEMO_OPTS = [
    "DATASETS.SHAPES.IMAGE_SIZE",
    "32",
    "INPUT.CROP_SIZE",
    "32",
    "INPUT.TEST_RESIZE",
    "32",
    "SOLVER.MAX_ITER",
    "500",
    "SOLVER.BASE_LR",
    "0.12",
    "TEST.EVAL_PERIOD",
    "250",
    "MODEL.NEGATIVE_SAMPLER.NAME",
    "AllNegatives",
    "INPUT.BATCHED_AUGMENTATION",
    "True",
]
LINEAR_CONFIG = "configs/Shapes/linear_eval_r18.yaml"
DETECTION_ITERS = 100
# The detectron2 step is a smoke test of the transfer path: scoring the first 200 of the 1000
# validation images keeps its evaluation short (the COCO configs' protocol is unchanged).
DETECTION_VAL_IMAGES = 200
TABLE_ROWS = [("kNN top-1 (%)", "knn"), ("linear top-1 (%)", "linear"), (f"box AP ({DETECTION_VAL_IMAGES} val)", "box_ap")]
REGENERATE = "make demo, then .venv/bin/python tools/demo.py --update-readme"
README_MARKERS = ("<!-- demo-table: `tools/demo.py --update-readme` writes it from output/demo/results.json -->", "<!-- /demo-table -->")


def _banner(text: str) -> None:
    print(f"\n{'=' * 70}\n{text}\n{'=' * 70}", flush=True)


def _knn_at_start_and_end(metrics_file: str):
    """(kNN top-1 before training, after training) from a run's metrics.json."""
    records, _ = read_metrics(metrics_file)
    knn = {r["iteration"]: r["knn/top1"] for r in records if "knn/top1" in r}
    if 0 not in knn or len(knn) < 2:
        raise RuntimeError(f"{metrics_file} lacks the kNN results before and after training")
    return knn[0], knn[max(knn)]


def pretrain(output_dir: str, opts, before_training=lambda: None) -> dict:
    """Pretrain (or finish pretraining); `before_training()` runs once the config and output dir are accepted."""
    args = argparse.Namespace(
        config_file=os.path.join(REPO_ROOT, PRETRAIN_CONFIG),
        resume=True,
        opts=[*DEMO_OPTS, "OUTPUT_DIR", output_dir, "TEST.EVAL_AT_START", "True", *opts],
    )
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=True)
    before_training()
    trainer.train()
    random_init, pretrained = _knn_at_start_and_end(os.path.join(output_dir, "metrics.json"))
    return {
        "knn_random_init": random_init,
        "knn_pretrained": pretrained,
        "weights": os.path.join(output_dir, "model_final.pth"),
        "config": cfg,
    }


def linear_eval(weights: str, output_dir: str, pretrain_cfg) -> float:
    """Top-1 of a linear classifier on the frozen backbone (`weights` "" = random init), with the
    data, image size, batch and backbone of the pretraining run."""
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(REPO_ROOT, LINEAR_CONFIG))
    for group, key in [
        ("DATASETS", "ROOT"),
        ("DATASETS", "SHAPES"),
        ("INPUT", "CROP_SIZE"),
        ("INPUT", "TEST_RESIZE"),
        ("MODEL", "BACKBONE"),
        ("SOLVER", "IMS_PER_BATCH"),
        ("DATALOADER", "NUM_WORKERS"),
        ("TEST", "IMS_PER_BATCH"),
    ]:
        cfg[group][key] = pretrain_cfg[group][key]
    cfg.merge_from_list(["MODEL.WEIGHTS", weights, "OUTPUT_DIR", output_dir, "SEED", str(pretrain_cfg.SEED)])
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=True)
    trainer.train()  # evaluates at the end, also when the run had already finished
    return trainer.storage.history("top1").latest()


def detection_ap(weights: str, output_dir: str, pretrain_cfg) -> float:
    """COCO box AP of Faster R-CNN R18-FPN fine-tuned on the same Shapes images from `weights`
    ("" = random init); images are upsampled to 64 px for the detector."""
    sys.path.insert(0, os.path.join(REPO_ROOT, "projects", "Detectron2Transfer"))
    from shapes_transfer import run_shapes_transfer

    shapes = pretrain_cfg.DATASETS.SHAPES
    opts = [
        "SOLVER.MAX_ITER",
        DETECTION_ITERS,
        "SOLVER.STEPS",
        (int(DETECTION_ITERS * 0.7),),
        "SOLVER.WARMUP_ITERS",
        DETECTION_ITERS // 10,
        "DATASETS.SHAPES.ROOT",
        pretrain_cfg.DATASETS.ROOT,
        "DATASETS.SHAPES.IMAGE_SIZE",
        shapes.IMAGE_SIZE,
        "DATASETS.SHAPES.NUM_TRAIN",
        shapes.NUM_TRAIN,
        "DATASETS.SHAPES.NUM_VAL",
        shapes.NUM_VAL,
        "DATASETS.SHAPES.SEED",
        shapes.SEED,
    ]
    return run_shapes_transfer(weights, output_dir, opts, val_images=DETECTION_VAL_IMAGES)["AP"]


def results_table(results: dict) -> str:
    """The demo's table: a row per comparison that results.json holds both sides of."""
    lines = [f"{'Shapes val':<20}{'random init':>14}{'SiMo pretrained':>18}"]
    for label, key in TABLE_ROWS:
        if f"{key}_pretrained" in results and f"{key}_random_init" in results:
            lines.append(f"{label:<20}{results[f'{key}_random_init']:>14.2f}{results[f'{key}_pretrained']:>18.2f}")
    return "\n".join(lines)


def provenance_line(provenance: dict) -> str:
    """The line under the README table: the run's code, torch and machine, and how to regenerate it."""
    dirty = " with uncommitted changes" if provenance["dirty"] else ""
    return (
        f"Source: commit {provenance['commit']}{dirty}, torch {provenance['torch']}, {provenance['machine']}, "
        f"{provenance['date']}; regenerate: {REGENERATE}"
    )


def update_readme(readme: str, results: dict) -> None:
    """Put results_table(results) in a code block, and its provenance_line under it, between
    README_MARKERS of `readme`."""
    missing = [f"{key}_{side}" for _, key in TABLE_ROWS for side in ("random_init", "pretrained") if f"{key}_{side}" not in results] + (
        [] if "provenance" in results else ["provenance"]
    )
    if missing:
        raise UserError(
            f"the demo's results lack {missing}: run the whole demo (`make demo`) first, "
            "in a new --output-dir if its results.json was written before the demo recorded its provenance"
        )
    block = f"```\n{results_table(results)}\n```\n{provenance_line(results['provenance'])}"
    replace_marked_block(readme, *README_MARKERS, block)


def check_same_code(results: dict, provenance: dict, results_file: str, steps_left: bool) -> None:
    """Refuse to add results from other code (commit or uncommitted changes) to those of results_file."""
    recorded = results.get("provenance", {})
    if steps_left and results and [recorded.get(k) for k in ("commit", "dirty")] != [provenance[k] for k in ("commit", "dirty")]:
        raise UserError(
            f"{results_file} holds results of commit {recorded.get('commit', 'unrecorded')} "
            f"(uncommitted changes: {recorded.get('dirty', 'unrecorded')}); this is commit {provenance['commit']} "
            f"(uncommitted changes: {provenance['dirty']}).\n"
            "Finish the demo with the code that started it, or run it in a new --output-dir."
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="output/demo")
    parser.add_argument("--skip-detection", action="store_true", help="leave out step 3 (detectron2)")
    parser.add_argument(
        "--update-readme", action="store_true", help="write OUTPUT_DIR/results.json's table into README.md and exit (nothing is run)"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE")
    args = parser.parse_args(argv)
    results_file = os.path.join(args.output_dir, "results.json")
    results = {}
    if os.path.isfile(results_file):
        with open(results_file) as f:
            results = json.load(f)
    if args.update_readme:
        with exit_on_user_error():
            update_readme(os.path.join(REPO_ROOT, "README.md"), results)
        print(f"README.md's demo table now reads:\n{results_table(results)}\n{provenance_line(results['provenance'])}")
        return
    provenance = run_provenance(REPO_ROOT)
    wanted = ("knn", "linear") if args.skip_detection else ("knn", "linear", "box_ap")
    steps_left = any(f"{key}_{side}" not in results for key in wanted for side in ("random_init", "pretrained"))
    with exit_on_user_error():
        check_same_code(results, provenance, results_file, steps_left)

    def save():
        os.makedirs(args.output_dir, exist_ok=True)
        with atomic_write(results_file, "w") as f:
            json.dump(results, f, indent=2)

    def step(name, fn):
        if name not in results:
            results[name] = fn()
            save()
        return results[name]

    def record_provenance():  # of a new demo, before its first step (so a run stopped midway keeps it)
        if not results:
            results["provenance"] = provenance
            save()

    with exit_on_user_error():
        _banner("1/3  Pretraining SiMo on Shapes (kNN accuracy before and after)")
        run = pretrain(os.path.join(args.output_dir, "pretrain"), args.opts, record_provenance)
        results.update({k: run[k] for k in ("knn_random_init", "knn_pretrained")})
        cfg = run["config"]
        _banner("2/3  Linear evaluation: random init, then pretrained")
        step("linear_random_init", lambda: linear_eval("", os.path.join(args.output_dir, "linear_random"), cfg))
        step("linear_pretrained", lambda: linear_eval(run["weights"], os.path.join(args.output_dir, "linear"), cfg))
        if not args.skip_detection:
            _banner("3/3  Detection transfer (detectron2 Faster R-CNN R18-FPN): random init, then pretrained")
            step("box_ap_random_init", lambda: detection_ap("", os.path.join(args.output_dir, "det_random"), cfg))
            step("box_ap_pretrained", lambda: detection_ap(run["weights"], os.path.join(args.output_dir, "det"), cfg))

    from plot_metrics import plot_metrics

    plot_file = os.path.join(args.output_dir, "pretrain_metrics.png")
    records, _ = read_metrics(os.path.join(args.output_dir, "pretrain", "metrics.json"))
    plot_metrics(records, plot_file, title="SiMo on Shapes")
    _banner(results_table(results) + f"\n\nCurves: {plot_file}   Everything: {args.output_dir}")


if __name__ == "__main__":
    main()
