"""`train_net.py --dry-run`: run every check of a real start (:func:`validate`) and print what it built.

The model is built on the meta device (no memory, no initialization), so a ResNet-50 config
resolves in about a second on a CPU; the schedule uses the nominal size of the training set
(ImageNet: 1,281,167 images) instead of reading it from disk. Nothing is written.
"""

import glob
import logging
import os

import yaml

from ssl_lab.checkpoint import Checkpointer
from ssl_lab.data.build import per_rank_batch_size
from ssl_lab.data.transforms import describe_crops
from ssl_lab.modeling.meta_arch import ContrastiveMethod
from ssl_lab.solver import scaled_lr
from ssl_lab.utils.logger import setup_logger

from .train_loop import SimpleTrainer, TrainerBase
from .trainer import DefaultTrainer
from .validate import nominal_train_size, validate

__all__ = ["dry_run", "summarize", "load_recipes", "compare_with_recipe", "format_report"]

logger = logging.getLogger("ssl_lab")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _DryRunTrainer(DefaultTrainer):
    """DefaultTrainer's parts built from given pieces: no data, no files, no process group."""

    def __init__(self, run):
        TrainerBase.__init__(self)
        self.cfg = run.cfg
        self.scheduler = run.scheduler
        self.max_iter = run.cfg.SOLVER.MAX_ITER
        self._trainer = SimpleTrainer(run.model, None, run.optimizer, non_finite_loss=run.cfg.SOLVER.NON_FINITE_LOSS)
        self.checkpointer = Checkpointer(run.model, "", save_to_disk=False, optimizer=run.optimizer)

    def build_writers(self):
        return []

    @classmethod
    def build_evaluators(cls, cfg):
        return []  # they read the test data when they run; validate built nothing of it


def negatives_and_alpha(cfg, model):
    """(K each query sees, alpha of the loss) as the method and its loss define them; (None, None)
    for a method without negatives. Alpha is the loss's own (EqCo's), else K (InfoNCE)."""
    if not isinstance(model, ContrastiveMethod):
        return None, None
    k = type(model).negatives_per_query(cfg, model.negative_sampler)
    return k, getattr(model.loss, "alpha", k)


def summarize(cfg, world_size: int, **validate_args):
    """Validate `cfg` for `world_size` processes (see :func:`validate`) and summarize what it built.

    Returns (resolved frozen cfg, summary dict of the numbers a run would use).
    """
    run = validate(cfg, world_size, quiet=False, **validate_args)
    cfg, model = run.cfg, run.model
    hook_list = [h for h in _DryRunTrainer(run).build_hooks() if h is not None]
    k, alpha = negatives_and_alpha(cfg, model)
    solver = cfg.SOLVER
    num_images = nominal_train_size(cfg)
    summary = {
        "world_size": world_size,
        "global_batch": solver.IMS_PER_BATCH,
        "per_rank_batch": per_rank_batch_size(cfg, world_size),
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
    for path in sorted(glob.glob(os.path.join(root, "recipes.yaml")) + glob.glob(os.path.join(root, "projects", "*", "recipes.yaml"))):
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
    diffs = [(key, _get(cfg, key), value) for key, value in row.get("expect", {}).items() if not _same(_get(cfg, key), value)]
    if summary is not None and summary["world_size"] == row.get("world_size", 8):
        diffs += [(key, summary[key], value) for key, value in row.get("resolved", {}).items() if not _same(summary[key], value)]
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
    """Validate `cfg` for the run `args` asks for (processes, --resume, --eval-only), print the report."""
    setup_logger()  # the console only: a dry run writes no file
    world_size = args.num_gpus * args.num_machines
    cfg, summary = summarize(cfg, world_size, resume=args.resume, allow_config_change=args.allow_config_change, eval_only=args.eval_only)
    print(format_report(args.config_file, cfg, summary))
    return summary
