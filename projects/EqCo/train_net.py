#!/usr/bin/env python
"""Pretraining with the EqCo project: ssl_lab's train_net plus EqCoLoss, MODEL.EQCO and the monitors.

    python projects/EqCo/train_net.py --config-file projects/EqCo/configs/Shapes/mocov2_r18_k16_eqco.yaml
    python projects/EqCo/train_net.py --num-gpus 8 \
        --config-file projects/EqCo/configs/ImageNet/mocov2_r50_200ep_k16_eqco.yaml
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from eqco import EqCoTrainer, add_eqco_config  # noqa: E402

from ssl_lab.engine import default_argument_parser, default_setup, launch, setup_cfg  # noqa: E402
from ssl_lab.utils.errors import exit_on_user_error  # noqa: E402


def setup(args):
    """Defaults + MODEL.EQCO <- config file <- command-line overrides."""
    return setup_cfg(args, config_fns=(add_eqco_config,))


def main(args):
    cfg = setup(args)
    default_setup(cfg, args)
    if args.eval_only:
        cfg.freeze()
        model = EqCoTrainer.build_model(cfg)
        EqCoTrainer.load_weights(model, cfg.MODEL.WEIGHTS)
        return EqCoTrainer.test(cfg, model)
    trainer = EqCoTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
    return trainer.storage.latest() if trainer.storage else {}


def run(argv=None):
    args = default_argument_parser("ssl_lab EqCo pretraining / evaluation").parse_args(argv)
    with exit_on_user_error():
        setup(args)  # fail on a bad config before starting any process
        launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(args,))


if __name__ == "__main__":
    run()
