#!/usr/bin/env python
"""MSBReg pretraining and evaluation: tools/train_net.py with the collapse statistics in the kNN results.

    python projects/MSBReg/train_net.py --config-file projects/MSBReg/configs/shapes_r18_k4.yaml
    python projects/MSBReg/train_net.py --config-file CFG --num-gpus 8 MODEL.MSBREG.SINGULAR_WEIGHT 0.002
    python projects/MSBReg/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.pth
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(_HERE, "..", "..")]  # the msbreg package; ssl_lab when not installed

from msbreg import MSBRegTrainer, add_config  # noqa: E402
from ssl_lab.engine import default_argument_parser, default_setup, launch, setup_cfg  # noqa: E402
from ssl_lab.utils.errors import exit_on_user_error  # noqa: E402


def main(args):
    cfg = setup_cfg(args, config_fns=[add_config])  # MSBReg keys even for configs without IMPORTS
    default_setup(cfg, args)
    if args.eval_only:
        cfg.freeze()
        model = MSBRegTrainer.build_model(cfg)
        MSBRegTrainer.load_weights(model, cfg.MODEL.WEIGHTS)
        return MSBRegTrainer.test(cfg, model)
    trainer = MSBRegTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
    return trainer.storage.latest() if trainer.storage else {}


def run(argv=None):
    args = default_argument_parser("MSBReg pretraining / evaluation").parse_args(argv)
    with exit_on_user_error():
        setup_cfg(args, config_fns=[add_config])  # fail on a bad config before starting any process
        launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(args,))


if __name__ == "__main__":
    run()
