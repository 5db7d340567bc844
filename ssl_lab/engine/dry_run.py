"""`train_net.py --dry-run`: resolve a config and build everything a run builds, without data.

The model is built on the meta device (no memory, no initialization), so a ResNet-50 config
resolves in about a second on a CPU; the schedule uses the nominal size of the training set
(ImageNet: 1,281,167 images) instead of reading it from disk. Nothing is written.
"""
import glob
import logging
import os

import torch
import yaml

from ssl_lab.checkpoint import Checkpointer
from ssl_lab.data.build import per_rank_batch_size
from ssl_lab.data.transforms import describe_crops
from ssl_lab.modeling.negative_samplers import RandomNegatives
from ssl_lab.solver import scaled_lr
from ssl_lab.utils.logger import setup_logger

# From the package, not its files: the engine's files may be reorganized.
from ssl_lab.engine import DefaultTrainer, SimpleTrainer, TrainerBase, resolve_schedule

__all__ = ["dry_run", "nominal_train_size", "summarize", "load_recipes", "compare_with_recipe", "format_report"]

logger = logging.getLogger("ssl_lab")

# Training-set sizes of the datasets the configs name, so that a schedule resolves without data.
NOMINAL_TRAIN_SIZES = {
    "imagenet_train": 1281167,
    "cifar10_train": 50000,
    "cifar100_train": 50000,
    "stl10_unlabeled": 100000,
    "stl10_train": 5000,
}

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def nominal_train_size(cfg) -> int:
    """Images in DATASETS.TRAIN: the nominal size of a known dataset, else counted on disk."""
    name = cfg.DATASETS.TRAIN[0]
    if name in NOMINAL_TRAIN_SIZES:
        return NOMINAL_TRAIN_SIZES[name]
    if name == "shapes_train":
        return cfg.DATASETS.SHAPES.NUM_TRAIN
    return len(DefaultTrainer.build_train_dataset(cfg))


class _DryRunTrainer(DefaultTrainer):
    """DefaultTrainer's parts built from given pieces: no data, no files, no process group."""

    def __init__(self, cfg, model, optimizer, scheduler):
        TrainerBase.__init__(self)
        self.cfg = cfg
        self.scheduler = scheduler
        self.max_iter = cfg.SOLVER.MAX_ITER
        self._trainer = SimpleTrainer(model, None, optimizer, non_finite_loss=cfg.SOLVER.NON_FINITE_LOSS)
        self.checkpointer = Checkpointer(model, "", save_to_disk=False, optimizer=optimizer, scheduler=scheduler)

    def build_writers(self):
        return []


def _negatives_per_query(cfg, model):
    """K each query sees: the sampler's draw, else all candidates of the method (None if no negatives)."""
    sampler = getattr(model, "negative_sampler", None)
    if isinstance(sampler, RandomNegatives):
        return sampler.num_negatives
    if cfg.MODEL.QUEUE.NAME and hasattr(model, "queue"):
        return cfg.MODEL.QUEUE.SIZE
    batch = cfg.SOLVER.IMS_PER_BATCH
    return {"SimCLR": 2 * batch - 2, "SiMo": batch - 1}.get(cfg.MODEL.META_ARCHITECTURE)


def summarize(cfg, world_size: int):
    """Build model, optimizer, LR schedule and hooks of `cfg` for `world_size` processes, without data.

    Returns (resolved frozen cfg, summary dict of the numbers a run would use).
    """
    num_images = nominal_train_size(cfg)
    cfg = resolve_schedule(cfg, num_images)
    per_rank = per_rank_batch_size(cfg, world_size)
    meta = cfg.clone()
    meta.defrost()
    meta.MODEL.DEVICE = "meta"
    meta.SOLVER.COMPILE = False
    meta.DATASETS.TEST = ()  # evaluation hooks read data; a real run builds them
    meta.freeze()
    with torch.device("meta"):
        model = DefaultTrainer.build_model(meta)
    optimizer = DefaultTrainer.build_optimizer(meta, model)
    scheduler = DefaultTrainer.build_lr_scheduler(meta, optimizer)
    hook_list = [h for h in _DryRunTrainer(meta, model, optimizer, scheduler).build_hooks() if h is not None]
    k = _negatives_per_query(cfg, model)
    alpha = cfg.MODEL.EQCO.ALPHA if cfg.MODEL.LOSS.NAME == "EqCoLoss" else k
    solver = cfg.SOLVER
    summary = {
        "world_size": world_size,
        "global_batch": solver.IMS_PER_BATCH,
        "per_rank_batch": per_rank,
        "lr": scaled_lr(cfg),
        "train_images": num_images,
        "iters_per_epoch": num_images // solver.IMS_PER_BATCH,
        "max_iter": solver.MAX_ITER,
        "warmup_iters": solver.WARMUP_ITERS,
        "steps": list(solver.STEPS),
        "negatives_per_query": k,
        "alpha": alpha,
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "backbone_params": sum(p.numel() for p in model.backbone.parameters()),
        "hooks": [type(h).__name__ for h in hook_list],
        "crops": describe_crops(cfg) + f", paired {getattr(model, 'CROP_PAIRING', 'by the method')}",
    }
    return cfg, summary


def load_recipes(root: str = REPO_ROOT) -> list:
    """Every row of recipes.yaml (the built-in methods) and projects/*/recipes.yaml, each with its "table"."""
    rows = []
    for path in sorted(glob.glob(os.path.join(root, "recipes.yaml"))
                       + glob.glob(os.path.join(root, "projects", "*", "recipes.yaml"))):
        with open(path) as f:
            table = yaml.safe_load(f)
        rows += [dict(row, table=os.path.relpath(path, root)) for row in table["rows"]]
    return rows


def _get(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return list(node) if isinstance(node, tuple) else node


def _same(actual, expected) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        return abs(float(actual) - float(expected)) <= 1e-9 * max(1.0, abs(float(expected)))
    return actual == expected


def compare_with_recipe(row: dict, cfg, summary: dict = None) -> list:
    """Keys where `cfg` (and the `summary` of `summarize`) differ from a recipe row: [(key, here, official)].

    Row "expect" holds config keys; row "resolved" holds summary values at the row's world size.
    """
    diffs = [(key, _get(cfg, key), value) for key, value in row.get("expect", {}).items()
             if not _same(_get(cfg, key), value)]
    if summary is not None and summary["world_size"] == row.get("world_size", 8):
        diffs += [(key, summary[key], value) for key, value in row.get("resolved", {}).items()
                  if not _same(summary[key], value)]
    return diffs


def _config_relpath(config_file: str) -> str:
    return os.path.relpath(os.path.abspath(config_file), REPO_ROOT)


def format_report(config_file: str, cfg, summary: dict) -> str:
    """The lines `--dry-run` prints."""
    s = summary
    lines = [
        f"Dry run of {config_file or '(defaults)'}: {cfg.MODEL.META_ARCHITECTURE} with "
        f"{cfg.MODEL.BACKBONE.NAME}-{cfg.MODEL.BACKBONE.DEPTH}, {s['world_size']} process(es)",
        f"  batch: {s['global_batch']} global, {s['per_rank_batch']} per rank",
        f"  lr: {s['lr']:.6g} ({cfg.SOLVER.BASE_LR} x {cfg.SOLVER.IMS_PER_BATCH}/"
        f"{cfg.SOLVER.REFERENCE_BATCH_SIZE or cfg.SOLVER.IMS_PER_BATCH}), {cfg.SOLVER.OPTIMIZER}, "
        f"{cfg.SOLVER.LR_SCHEDULER_NAME}",
        f"  schedule: {s['train_images']} images, {s['iters_per_epoch']} iterations per epoch, "
        f"{s['max_iter']} in total, warmup {s['warmup_iters']}" + (f", steps {s['steps']}" if s["steps"] else ""),
        f"  crops: {s['crops']}",
        f"  negatives per query K: {s['negatives_per_query']}, alpha: {s['alpha']}",
        f"  parameters: {s['params']:,} ({s['trainable_params']:,} trainable; backbone {s['backbone_params']:,})",
        f"  hooks: {', '.join(s['hooks'])}",
    ]
    rows = [r for r in load_recipes() if config_file and r["config"] == _config_relpath(config_file)]
    if not rows:
        lines.append("  recipe: no recipe row lists this config")
    for row in rows:
        diffs = compare_with_recipe(row, cfg, s)
        where = f"recipe row '{row['name']}' ({row['table']})"
        if not diffs:
            lines.append(f"  {where}: matches")
        else:
            lines.append(f"  {where}: differs in " + "; ".join(f"{k} = {a} (official {b})" for k, a, b in diffs))
    return "\n".join(lines)


def dry_run(cfg, args) -> dict:
    """Resolve `cfg` for the processes `args` asks for, build everything without data, print the report."""
    setup_logger()  # the console only: a dry run writes no file
    world_size = args.num_gpus * args.num_machines
    cfg, summary = summarize(cfg, world_size)
    print(format_report(args.config_file, cfg, summary))
    return summary
