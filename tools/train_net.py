#!/usr/bin/env python
"""The one entry point for pretraining and evaluation.

python tools/train_net.py --config-file configs/Shapes/mocov2_r18.yaml
python tools/train_net.py --config-file CFG --num-gpus 8 SOLVER.IMS_PER_BATCH 512
python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.pth
python tools/train_net.py --config-file CFG --num-gpus 8 --dry-run
"""

import logging
import os
import sys

_CHECKOUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if os.path.isdir(os.path.join(_CHECKOUT, "ssl_lab")):  # run from a checkout; installed, the script is on PATH
    sys.path.insert(0, _CHECKOUT)

from ssl_lab.engine import (  # noqa: E402
    DefaultTrainer,
    default_argument_parser,
    default_setup,
    launch,
    setup_cfg,
    validate,
)
from ssl_lab.engine.dry_run import dry_run  # noqa: E402
from ssl_lab.engine.launch import check_launch  # noqa: E402
from ssl_lab.evaluation import check_weights_for_evaluation, save_eval_results  # noqa: E402
from ssl_lab.utils import comm  # noqa: E402
from ssl_lab.utils.errors import exit_on_user_error  # noqa: E402
from ssl_lab.utils.logger import start_log_files  # noqa: E402

logger = logging.getLogger("ssl_lab")


def main(args):
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    if args.eval_only:
        cfg.freeze()
        model = DefaultTrainer.build_model(cfg)
        report = DefaultTrainer.load_weights(model, cfg.MODEL.WEIGHTS, cfg.MODEL.WEIGHTS_ALLOW_PARTIAL)
        check_weights_for_evaluation(cfg, model, report.other_modules)
        start_log_files()
        results = DefaultTrainer.test(cfg, model)
        if comm.is_main_process():
            save_eval_results(cfg, results)
        return results
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=args.resume, allow_config_change=args.allow_config_change)
    trainer.train()
    return trainer.storage.latest() if trainer.storage else {}


def run(argv=None):
    args = default_argument_parser().parse_args(argv)
    if args.debug:
        os.environ["SSL_LAB_DEBUG"] = "1"  # the worker processes inherit it
    with exit_on_user_error():
        cfg = setup_cfg(args)
        check_launch(args.num_gpus, args.num_machines, args.machine_rank, args.dist_url)
        if args.dry_run:  # every check below, then a report of what was built
            dry_run(cfg, args)
            return
        # refuse what the run would refuse before training, before starting any process
        validate(
            cfg,
            args.num_gpus * args.num_machines,
            resume=args.resume,
            allow_config_change=args.allow_config_change,
            eval_only=args.eval_only,
        )
        launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))


if __name__ == "__main__":
    run()
