"""The command line and the set-up every entry point shares: argument parser, config
assembly, and the logger + seeding that start a run."""

import argparse
import logging
import sys

import torch

from ssl_lab.config import ConfigError, config_functions, get_cfg
from ssl_lab.utils import comm
from ssl_lab.utils.collect_env import collect_env_info
from ssl_lab.utils.device import resolve_device
from ssl_lab.utils.env import seed_all_rng, set_deterministic
from ssl_lab.utils.host_memory import keep_freed_host_memory
from ssl_lab.utils.logger import setup_logger

from .run_directory import RunDirectory

__all__ = ["default_argument_parser", "default_setup", "setup_cfg"]

logger = logging.getLogger("ssl_lab")


def default_argument_parser(description: str = "ssl_lab training / evaluation") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Examples:\n"
            "  train_net.py --config-file configs/Shapes/mocov2_r18.yaml\n"
            "  train_net.py --config-file cfg.yaml --num-gpus 8 SOLVER.IMS_PER_BATCH 512\n"
            "  train_net.py --config-file cfg.yaml --eval-only MODEL.WEIGHTS output/model_final.pth"
        ),
    )
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to a config file")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/last_checkpoint")
    parser.add_argument(
        "--allow-config-change",
        action="store_true",
        help="with --resume: continue even though the config changes what defines the saved run "
        "(model, method, batch, schedule, augmentation)",
    )
    parser.add_argument("--eval-only", action="store_true", help="evaluate MODEL.WEIGHTS and exit")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="resolve the config, build model/optimizer/schedule/hooks without data, print "
        "batch, lr, schedule, K, alpha, parameter counts and the recipe row; exit",
    )
    parser.add_argument("--num-gpus", type=int, default=1, help="processes per machine (CPU processes without GPUs)")
    parser.add_argument("--num-machines", type=int, default=1)
    parser.add_argument("--machine-rank", type=int, default=0, help="rank of this machine (0 .. num-machines - 1)")
    parser.add_argument("--dist-url", default="auto", help="tcp://host:port of machine 0, or 'auto' on one machine")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error (same as SSL_LAB_DEBUG=1)")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE", help="config overrides, e.g. SOLVER.MAX_ITER 100 OUTPUT_DIR out/"
    )
    return parser


def setup_cfg(args, config_fns=()):
    """Defaults (+ `add_config` of the projects in IMPORTS, + `config_fns`) <- config file <- overrides.

    The result is not frozen: DefaultTrainer fills in the schedule first.
    """
    flags = [item for item in args.opts if item.startswith("--")]
    if flags:
        raise ConfigError(f"{flags[0]} comes after the KEY VALUE overrides; put command-line flags before them")
    cfg = get_cfg()
    for add_config in [*config_functions(args.config_file, args.opts), *config_fns]:
        add_config(cfg)
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(list(args.opts))
    return cfg


def default_setup(cfg, args) -> None:
    """The logger, the run's first log lines (world size, rank, device), seeding and determinism.
    A `SEED -1` resume takes the seed of the run it continues. The config was checked before any
    process started (:func:`ssl_lab.engine.validate`); nothing is written here: the log file starts
    with :func:`start_log_files` once the run is accepted."""
    resume = getattr(args, "resume", False) and not getattr(args, "eval_only", False)
    seed = RunDirectory(cfg.OUTPUT_DIR).resumed_seed(cfg, resume)
    rank = comm.get_rank()
    # log.txt is written once the run is accepted (DefaultTrainer.resume_or_load, or loaded weights)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=rank, defer_file=True)
    device = resolve_device(cfg.MODEL.DEVICE)
    if device.type == "cuda" and comm.is_dist():
        device = torch.device("cuda", torch.cuda.current_device())
    logger.info(f"World size: {comm.get_world_size()}  rank: {rank}  device: {device}")
    logger.info(f"Command line: {' '.join(sys.argv)}")
    logger.info("Environment:\n" + collect_env_info())
    if getattr(args, "config_file", ""):
        logger.info(f"Config file: {args.config_file}")
    if seed != cfg.SEED:
        cfg.SEED = seed
        logger.info(f"SEED -1 on --resume: continuing with the seed of the run in OUTPUT_DIR, {cfg.SEED}")
    if cfg.SEED < 0:  # one fresh seed for weights, data order and augmentation, written to config.yaml
        cfg.SEED = comm.shared_random_seed()
        logger.info(f"SEED -1: drew seed {cfg.SEED}; add 'SEED {cfg.SEED}' to repeat this run")
    seed = seed_all_rng(cfg.SEED + rank)
    logger.info(f"Seed: {seed}")
    set_deterministic(cfg.CUDNN_DETERMINISTIC)
    if not cfg.CUDNN_DETERMINISTIC:
        torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK
    keep_freed_host_memory(cfg.HOST_MEMORY_CACHE_MB)
