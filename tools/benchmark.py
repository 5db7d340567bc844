#!/usr/bin/env python
"""Speed of one config, measured in one process run.

    benchmark.py --config-file configs/Shapes/mocov2_r18.yaml --iters 20 --output bench.json
    benchmark.py --config-file CFG --amp --channels-last MODEL.DEVICE cuda SOLVER.IMS_PER_BATCH 256
    benchmark.py --config-file CFG --augmentation-ops --iters 10 --warmup 0   # batched recipe, op by op

1. Data: images/s of the real training loader (multi-view PIL augmentation, DATALOADER.NUM_WORKERS
   workers), and of the batched path (uint8 loader + BatchedMultiView on MODEL.DEVICE).
2. Step: ssl_lab's training step (DefaultTrainer: hooks + run_step) on batches already in memory,
   against a bare PyTorch loop over the same model, loss and optimizer. The two alternate step by
   step (A B B A ...) and medians are compared, so load on shared cores cancels.

With --augmentation-ops, only the batched recipe is timed, op by op, on a random uint8 batch.
The JSON also records the provenance of the run (commit, uncommitted changes, torch, machine).
"""

import argparse
import inspect
import itertools
import json
import os
import statistics
import sys
import tempfile
import time

import torch
from tabulate import tabulate
from torch.utils.data import ConcatDataset

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from ssl_lab.data import build_dataset, build_train_loader, build_view_normalization  # noqa: E402
from ssl_lab.data.batched_augment import build_batched_augmentation, build_uint8_transform  # noqa: E402
from ssl_lab.engine import DefaultTrainer, setup_cfg, validate  # noqa: E402
from ssl_lab.utils.events import EventStorage  # noqa: E402
from ssl_lab.utils.files import atomic_write  # noqa: E402
from ssl_lab.utils.host_memory import keep_freed_host_memory  # noqa: E402
from ssl_lab.utils.provenance import run_provenance  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def time_loader(loader, warmup: int, iters: int, keep: int):
    """Images/s of `iters` batches after `warmup` (worker start-up); also returns the last `keep` batches."""
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    batches, images = [], 0
    start = time.perf_counter()
    for _ in range(iters):
        batch = next(it)
        images += len(batch[1])
        batches = (batches + [batch])[-keep:]
    return images / (time.perf_counter() - start), batches


class BareLoop:
    """The training step written directly in PyTorch: forward, sum of losses, zero_grad, backward,
    optimizer step, EMA update, with the configured micro-batching, autocast and memory format.

    `model` (from build_model(cfg), channels_last / compiled as configured) and `optimizer` are
    the trainer's own: a second instance of the same model ran 1-2% faster in this same loop on
    CPU (memory placement), which would show up as framework overhead.
    """

    def __init__(self, cfg, model, optimizer, batches, device: torch.device):
        self.model = model
        self.optimizer = optimizer
        self.memory_format = torch.channels_last if cfg.SOLVER.CHANNELS_LAST else torch.contiguous_format
        self.batches = itertools.cycle(batches)
        self.device = device
        self.accum = cfg.SOLVER.GRAD_ACCUM_STEPS
        self.pass_labels = "labels" in inspect.signature(model.forward).parameters
        self.momentum = cfg.MODEL.MOMENTUM.BASE if hasattr(model, "momentum_update") else None
        amp = cfg.SOLVER.AMP
        self.autocast_dtype = getattr(torch, amp.DTYPE) if amp.ENABLED else None
        self.scaler = torch.amp.GradScaler(device.type) if amp.ENABLED and amp.DTYPE == "float16" else None

    def _loss(self):
        views, labels = next(self.batches)
        kwargs = {"views": [v.to(self.device, memory_format=self.memory_format) for v in views]}
        if self.pass_labels:
            kwargs["labels"] = labels.to(self.device)
        if self.autocast_dtype is None:
            return sum(self.model(**kwargs).values())
        with torch.autocast(self.device.type, dtype=self.autocast_dtype):
            return sum(self.model(**kwargs).values())

    def step(self):
        self.optimizer.zero_grad(set_to_none=True)
        for _ in range(self.accum):
            loss = self._loss() / self.accum
            (self.scaler.scale(loss) if self.scaler else loss).backward()
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.momentum is not None:
            self.model.momentum_update(self.momentum)


def _quartiles(values):
    """[first, third] quartile ([v, v] for a single value)."""
    if len(values) == 1:
        return [values[0], values[0]]
    q = statistics.quantiles(values, n=4)
    return [q[0], q[2]]


def ssl_lab_step(trainer: DefaultTrainer) -> None:
    """One iteration exactly as TrainerBase.train runs it."""
    trainer.before_step()
    trainer.run_step()
    trainer.after_step()
    trainer.iter += 1


def time_steps(trainer: DefaultTrainer, bare: BareLoop, warmup: int, iters: int, device: torch.device):
    """Per-step seconds of ssl_lab (A) and of the bare loop (B), interleaved A B B A A B ...: each pair
    is measured back to back, and which one runs first alternates, so any advantage of a position cancels."""
    ssl_times, bare_times = [], []
    with EventStorage(0) as trainer.storage:
        trainer.before_train()
        try:
            for i in range(warmup + iters):
                if i % 2 == 0:
                    a = _timed(lambda: ssl_lab_step(trainer), device)
                    b = _timed(bare.step, device)
                else:
                    b = _timed(bare.step, device)
                    a = _timed(lambda: ssl_lab_step(trainer), device)
                if i >= warmup:
                    ssl_times.append(a)
                    bare_times.append(b)
        finally:
            trainer.after_train()
    return ssl_times, bare_times


def time_batched_augmentation(cfg, images: torch.Tensor, warmup: int, iters: int, device: torch.device) -> float:
    """Images/s of the batched multi-view augmentation of a uint8 batch already on `device` (median)."""
    augment = build_batched_augmentation(cfg).to(device)
    generator = torch.Generator().manual_seed(0)
    times = [_timed(lambda: augment(images, generator), device) for _ in range(warmup + iters)][warmup:]
    return len(images) / statistics.median(times)


@torch.no_grad()
def time_augmentation_ops(cfg, warmup: int, iters: int, device: torch.device) -> dict:
    """{name: `iters` seconds after `warmup`} of each op of the batched recipe's first view, each run on
    the previous op's output, then of the whole module (every view, from uint8), on a random uint8 batch
    (SOLVER.IMS_PER_BATCH, 3, S, S), S = INPUT.BATCHED_AUGMENTATION_SIZE or else INPUT.CROP_SIZE."""
    augment = build_batched_augmentation(cfg).to(device)
    size = cfg.INPUT.BATCHED_AUGMENTATION_SIZE or cfg.INPUT.CROP_SIZE
    generator = torch.Generator().manual_seed(cfg.SEED)
    images = torch.randint(0, 256, (cfg.SOLVER.IMS_PER_BATCH, 3, size, size), dtype=torch.uint8, generator=generator).to(device)
    view = augment.views[0]
    times = [[] for _ in range(len(view) + 1)]
    for _ in range(warmup + iters):
        x = images.float().div_(255)
        for i, op in enumerate(view):
            _sync(device)
            start = time.perf_counter()
            x = op(x, generator)
            _sync(device)
            times[i].append(time.perf_counter() - start)
        times[-1].append(_timed(lambda: augment(images, generator), device))
    names = [type(op).__name__ for op in view] + [f"whole module ({cfg.INPUT.NUM_VIEWS} views)"]
    return {name: t[warmup:] for name, t in zip(names, times)}


def prepare_cfg(args):
    """The config with the command-line options, no evaluation, and a schedule longer than the run."""
    cfg = setup_cfg(args)
    cfg.SOLVER.AMP.ENABLED = cfg.SOLVER.AMP.ENABLED or args.amp
    cfg.SOLVER.CHANNELS_LAST = cfg.SOLVER.CHANNELS_LAST or args.channels_last
    cfg.SOLVER.COMPILE = cfg.SOLVER.COMPILE or args.compile
    if args.grad_accum:
        cfg.SOLVER.GRAD_ACCUM_STEPS = args.grad_accum
    cfg.DATASETS.TEST = ()
    cfg.SOLVER.EPOCHS = 0
    cfg.SOLVER.MAX_ITER = 10 * (args.warmup + args.iters) + 1000
    cfg.SOLVER.CHECKPOINT_PERIOD = cfg.SOLVER.MAX_ITER
    cfg.SEED = max(cfg.SEED, 0)
    return cfg


def run(cfg, args) -> dict:
    """All measurements of one config (OUTPUT_DIR is a temporary directory)."""
    torch.manual_seed(cfg.SEED)
    keep_freed_host_memory(cfg.HOST_MEMORY_CACHE_MB)  # as default_setup does for train_net.py
    validate(cfg, world_size=1)  # what train_net.py refuses, refused before anything is timed
    trainer = DefaultTrainer(cfg)
    cfg = trainer.cfg
    device = next(trainer.model.parameters()).device
    workers = cfg.DATALOADER.NUM_WORKERS
    keep = max(2, cfg.SOLVER.GRAD_ACCUM_STEPS)

    data_rate, batches = time_loader(build_train_loader(cfg, trainer.train_dataset), args.warmup, args.iters, keep)
    uint8_sets = [build_dataset(cfg, name, build_uint8_transform(cfg)) for name in cfg.DATASETS.TRAIN]
    uint8_dataset = uint8_sets[0] if len(uint8_sets) == 1 else ConcatDataset(uint8_sets)
    uint8_rate, uint8_batches = time_loader(build_train_loader(cfg, uint8_dataset), args.warmup, args.iters, 1)
    batched_rate = time_batched_augmentation(cfg, uint8_batches[0][0].to(device), args.warmup, args.iters, device)
    del uint8_batches

    normalize = build_view_normalization(cfg).to(device)  # uint8 views (NORMALIZE_ON_DEVICE) -> what both loops get
    batches = [(normalize([v.to(device) for v in views]), labels.to(device)) for views, labels in batches]
    trainer.data_loader = itertools.cycle(batches)
    bare = BareLoop(cfg, trainer.model, trainer.optimizer, batches, device)
    ssl_times, bare_times = time_steps(trainer, bare, args.warmup, args.iters, device)

    batch = cfg.SOLVER.IMS_PER_BATCH
    ssl_step, bare_step = statistics.median(ssl_times), statistics.median(bare_times)
    pair_ratios = [a / b for a, b in zip(ssl_times, bare_times)]
    return {
        "config": args.config_file,
        "meta_architecture": cfg.MODEL.META_ARCHITECTURE,
        "backbone": f"{cfg.MODEL.BACKBONE.NAME}-{cfg.MODEL.BACKBONE.DEPTH}",
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": batch,
        "image_size": cfg.INPUT.CROP_SIZE,
        "num_views": cfg.INPUT.NUM_VIEWS,
        "queue_size": cfg.MODEL.QUEUE.SIZE if cfg.MODEL.QUEUE.NAME else 0,
        "num_workers": workers,
        "amp": cfg.SOLVER.AMP.DTYPE if cfg.SOLVER.AMP.ENABLED else "",
        "channels_last": cfg.SOLVER.CHANNELS_LAST,
        "compile": cfg.SOLVER.COMPILE,
        "grad_accum_steps": cfg.SOLVER.GRAD_ACCUM_STEPS,
        "iters": args.iters,
        "warmup": args.warmup,
        "data_images_per_s": data_rate,
        "data_images_per_s_per_worker": data_rate / max(workers, 1),
        "uint8_loader_images_per_s": uint8_rate,
        "batched_aug_images_per_s": batched_rate,
        "train_step_s": ssl_step,
        "bare_step_s": bare_step,
        "train_images_per_s": batch / ssl_step,
        "bare_images_per_s": batch / bare_step,
        "overhead_ratio": ssl_step / bare_step,
        "overhead_ratio_mean": statistics.fmean(ssl_times) / statistics.fmean(bare_times),
        # spread of the ratio: quartiles of the per-pair ratios (adjacent A, B steps)
        "overhead_ratio_quartiles": _quartiles(pair_ratios),
        "train_step_times_s": ssl_times,
        "bare_step_times_s": bare_times,
    }


def print_table(result: dict) -> None:
    rows = [
        ("config", result["config"]),
        ("model", f"{result['meta_architecture']} {result['backbone']}"),
        ("device / threads", f"{result['device']} / {result['threads']}"),
        ("batch x views x size", f"{result['batch']} x {result['num_views']} x {result['image_size']} px"),
        ("options", ", ".join(f"{k}={result[k]}" for k in ("amp", "channels_last", "compile", "grad_accum_steps"))),
        (f"data img/s (PIL, {result['num_workers']} workers)", f"{result['data_images_per_s']:.1f}"),
        ("data img/s per worker", f"{result['data_images_per_s_per_worker']:.1f}"),
        ("uint8 loader img/s", f"{result['uint8_loader_images_per_s']:.1f}"),
        ("batched augmentation img/s", f"{result['batched_aug_images_per_s']:.1f}"),
        ("ssl_lab step img/s (median)", f"{result['train_images_per_s']:.1f}"),
        ("bare PyTorch img/s (median)", f"{result['bare_images_per_s']:.1f}"),
        ("overhead ratio (median / mean)", f"{result['overhead_ratio']:.3f} / {result['overhead_ratio_mean']:.3f}"),
        ("per-pair ratio quartiles", " - ".join(f"{q:.3f}" for q in result["overhead_ratio_quartiles"])),
    ]
    print(tabulate(rows, tablefmt="github"))


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--iters", type=int, default=20, help="timed batches / steps of each measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches / steps before each measurement")
    parser.add_argument("--output", default="", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--amp", action="store_true", help="SOLVER.AMP.ENABLED (SOLVER.AMP.DTYPE: bfloat16)")
    parser.add_argument("--channels-last", action="store_true", help="SOLVER.CHANNELS_LAST")
    parser.add_argument("--compile", action="store_true", help="SOLVER.COMPILE")
    parser.add_argument("--grad-accum", type=int, default=0, metavar="N", help="SOLVER.GRAD_ACCUM_STEPS")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--augmentation-ops", action="store_true", help="only time the batched recipe op by op (milliseconds, minimum over --iters)"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE", help="config overrides")
    return parser


def main(argv=None) -> dict:
    args = argument_parser().parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        raise SystemExit("--iters must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = prepare_cfg(args)
    # The step is timed on views the PIL loader made; the batched augmentation is timed on its own.
    cfg.INPUT.BATCHED_AUGMENTATION = False
    if args.augmentation_ops:
        times = time_augmentation_ops(cfg, args.warmup, args.iters, torch.device(cfg.MODEL.DEVICE))
        result = {
            "config": args.config_file,
            "augmentation": cfg.INPUT.AUGMENTATION,
            "batch": cfg.SOLVER.IMS_PER_BATCH,
            "threads": torch.get_num_threads(),
            "ops_ms": {op: 1000 * min(t) for op, t in times.items()},
            "ops_times_s": times,
        }
        print(tabulate(result["ops_ms"].items(), headers=["op", "ms (minimum)"], tablefmt="github", floatfmt=".1f"))
    else:
        with tempfile.TemporaryDirectory(prefix="ssl_lab_benchmark_") as output_dir:
            cfg.OUTPUT_DIR = output_dir
            result = run(cfg, args)
        print_table(result)
    result["provenance"] = run_provenance(REPO_ROOT)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with atomic_write(args.output, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
