#!/usr/bin/env python
"""The demo behind `make demo`: pretrain on the built-in Shapes data on the CPU and
compare the kNN accuracy of the pretrained backbone with the same backbone at random init.

    python tools/demo.py --output-dir output/demo [KEY VALUE ...]

Running it again continues (or just reports) the run in --output-dir.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ssl_lab.engine import DefaultTrainer, default_setup, setup_cfg  # noqa: E402
from ssl_lab.utils.errors import exit_on_user_error  # noqa: E402

DEFAULT_CONFIG = "configs/Shapes/mocov2_r18.yaml"


def knn_at_start_and_end(metrics_file: str):
    """(top-1 before training, top-1 after training) from a run's metrics.json."""
    knn = []
    with open(metrics_file) as f:
        for line in f:
            record = json.loads(line)
            if "knn/top1" in record:
                knn.append((record["iteration"], record["knn/top1"]))
    knn.sort()
    if len(knn) < 2 or knn[0][0] != 0:
        raise RuntimeError(f"{metrics_file} lacks the kNN results at iteration 0 and at the end")
    return knn[0][1], knn[-1][1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="output/demo")
    parser.add_argument("--config-file", default=DEFAULT_CONFIG)
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE")
    args = parser.parse_args(argv)
    args.opts = ["OUTPUT_DIR", args.output_dir, "TEST.EVAL_AT_START", "True", *args.opts]

    with exit_on_user_error():
        cfg = setup_cfg(args)
        default_setup(cfg, args)
        print(f"\n== Pretraining {cfg.MODEL.META_ARCHITECTURE} ({cfg.MODEL.BACKBONE.NAME}-{cfg.MODEL.BACKBONE.DEPTH}) "
              f"on Shapes; the Shapes images are generated on first use under "
              f"{os.path.join(cfg.DATASETS.ROOT or os.environ.get('SSL_LAB_DATASETS', 'datasets'), 'shapes')}\n",
              flush=True)
        trainer = DefaultTrainer(cfg)
        trainer.resume_or_load(resume=True)
        trainer.train()

    from plot_metrics import load_metrics, plot_metrics

    metrics_file = os.path.join(args.output_dir, "metrics.json")
    plot_file = os.path.join(args.output_dir, "metrics.png")
    plot_metrics(load_metrics(metrics_file), plot_file, title="ssl_lab demo")
    random_init, pretrained = knn_at_start_and_end(metrics_file)
    print("\n" + "=" * 60)
    print(f"kNN top-1 on shapes_val (k={cfg.TEST.KNN.K}, {len(trainer.train_dataset)} training images)")
    print(f"  random init : {random_init:6.2f} %")
    print(f"  pretrained  : {pretrained:6.2f} %   ({pretrained - random_init:+.2f} points)")
    print(f"Curves: {plot_file}   Run: {args.output_dir}")
    print("=" * 60)


if __name__ == "__main__":
    main()
