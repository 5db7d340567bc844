#!/usr/bin/env python
"""End-to-end seconds per iteration of ssl_lab against lightly on the same MoCo v2 work.

    python tools/benchmark_lightly.py --lightly-python /work/venvs/lightly/bin/python

Three paths train the same model on the same images, each in its own process (lightly lives only
in its own virtual environment, never in ssl_lab's):

- ``ssl_lab``: ssl_lab's trainer with its default data path (the position-seeded PIL recipe in
  DATALOADER.NUM_WORKERS loader workers);
- ``ssl_lab_batched``: the same with ``INPUT.BATCHED_AUGMENTATION True`` (uint8 loader, batched
  recipe on MODEL.DEVICE);
- ``lightly``: lightly 1.6.0's documented MoCo recipe: ``MoCoV2Transform`` on a ``LightlyDataset``
  in a torch DataLoader (same workers, batch and crop), torchvision ResNet of the same depth with
  ``MoCoProjectionHead``, momentum copies updated by ``update_momentum`` (keys under no_grad),
  ``NTXentLoss`` with a memory bank of MODEL.QUEUE.SIZE, SGD with the config's settings.

ssl_lab runs recipe ``MoCoV2`` with crops of (0.2, 1) (lightly's default ``min_scale``) unless the
overrides say otherwise. Rounds interleave: every round runs each path for ``--warmup`` untimed
iterations (the loader's prefetched batches of the idle time) and ``--iters`` timed ones, the order
rotating from round to round, so load from other processes falls on all paths alike. Printed:
median s/it per path, and the ratios to lightly (overall, and per round for the spread).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

PATHS = ("ssl_lab", "ssl_lab_batched", "lightly")
TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS_DIR)  # benchmark.py, in the ssl_lab processes only
SAME_RECIPE = ["INPUT.AUGMENTATION", "MoCoV2", "INPUT.CROP_SCALE", "(0.2, 1.0)"]


def ssl_lab_cfg(args, batched: bool):
    """The config of the ssl_lab paths (benchmark.py's: no evaluation, a schedule longer than the run)."""
    from benchmark import argument_parser, prepare_cfg

    opts = SAME_RECIPE + list(args.opts) + ["INPUT.BATCHED_AUGMENTATION", str(batched)]
    return prepare_cfg(argument_parser().parse_args(["--config-file", args.config_file, *opts]))


def ssl_lab_stepper(args, batched: bool, output_dir: str):
    """One ssl_lab iteration (data + step, as TrainerBase.train runs it) per call."""
    from ssl_lab.engine import DefaultTrainer, validate
    from ssl_lab.utils.events import EventStorage
    from ssl_lab.utils.host_memory import keep_freed_host_memory

    from benchmark import ssl_lab_step

    cfg = ssl_lab_cfg(args, batched)
    cfg.OUTPUT_DIR = output_dir
    torch.manual_seed(cfg.SEED)
    keep_freed_host_memory(cfg.HOST_MEMORY_CACHE_MB)  # as default_setup does for train_net.py
    validate(cfg, world_size=1)
    trainer = DefaultTrainer(cfg)
    trainer.data_loader = trainer.build_train_loader(cfg, trainer.train_dataset, 0)  # as train() does
    trainer.storage = EventStorage(0).__enter__()
    trainer.before_train()
    return lambda: ssl_lab_step(trainer)


def lightly_transform(spec: dict):
    from lightly.transforms import MoCoV2Transform

    return MoCoV2Transform(input_size=spec["crop_size"], min_scale=spec["min_scale"], normalize={"mean": spec["mean"], "std": spec["std"]})


def lightly_stepper(spec: dict):
    """One iteration of lightly's MoCo recipe per call (next batch, forward, backward, update)."""
    import copy

    import torchvision
    from lightly.data import LightlyDataset
    from lightly.loss import NTXentLoss
    from lightly.models.modules import MoCoProjectionHead
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from torch import nn

    loader = torch.utils.data.DataLoader(
        LightlyDataset(spec["image_dir"], transform=lightly_transform(spec)),
        batch_size=spec["batch"],
        shuffle=True,
        drop_last=True,
        num_workers=spec["workers"],
        persistent_workers=spec["workers"] > 0,
    )
    resnet = getattr(torchvision.models, f"resnet{spec['depth']}")()
    backbone = nn.Sequential(*list(resnet.children())[:-1], nn.Flatten(1))
    head = MoCoProjectionHead(resnet.fc.in_features, spec["hidden_dim"], spec["out_dim"])
    backbone_momentum, head_momentum = copy.deepcopy(backbone), copy.deepcopy(head)
    deactivate_requires_grad(backbone_momentum)
    deactivate_requires_grad(head_momentum)
    criterion = NTXentLoss(temperature=spec["temperature"], memory_bank_size=(spec["queue"], spec["out_dim"]))
    params = list(backbone.parameters()) + list(head.parameters())
    optimizer = torch.optim.SGD(params, lr=spec["lr"], momentum=spec["momentum"], weight_decay=spec["weight_decay"])
    batches = iter(())

    def step():
        nonlocal batches
        try:
            views = next(batches)[0]
        except StopIteration:  # a new epoch
            batches = iter(loader)
            views = next(batches)[0]
        query = head(backbone(views[0]))
        with torch.no_grad():
            update_momentum(backbone, backbone_momentum, spec["ema"])
            update_momentum(head, head_momentum, spec["ema"])
            key = head_momentum(backbone_momentum(views[1]))
        loss = criterion(query, key)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def lightly_spec(args) -> dict:
    """What the lightly worker needs from ssl_lab's config (the worker cannot import ssl_lab)."""
    from ssl_lab.data import build_dataset

    cfg = ssl_lab_cfg(args, batched=False)
    if len(cfg.DATASETS.TRAIN) != 1:
        raise SystemExit("benchmark_lightly.py compares one training set")
    dataset = build_dataset(cfg, cfg.DATASETS.TRAIN[0], None)
    image_dir = getattr(dataset, "root", None) if not hasattr(dataset, "file_names") else os.path.dirname(dataset.file_names[0])
    if not image_dir:
        raise SystemExit(f"cannot tell the image folder of {cfg.DATASETS.TRAIN[0]} for lightly's LightlyDataset")
    m = cfg.MODEL
    return {
        "image_dir": image_dir,
        "crop_size": cfg.INPUT.CROP_SIZE,
        "min_scale": cfg.INPUT.CROP_SCALE[0],
        "mean": list(cfg.INPUT.PIXEL_MEAN),
        "std": list(cfg.INPUT.PIXEL_STD),
        "batch": cfg.SOLVER.IMS_PER_BATCH,
        "workers": cfg.DATALOADER.NUM_WORKERS,
        "depth": m.BACKBONE.DEPTH,
        "hidden_dim": m.PROJECTOR.HIDDEN_DIM,
        "out_dim": m.PROJECTOR.OUT_DIM,
        "temperature": m.LOSS.TEMPERATURE,
        "queue": m.QUEUE.SIZE,
        "ema": m.MOMENTUM.BASE,
        "lr": cfg.SOLVER.BASE_LR,
        "momentum": cfg.SOLVER.MOMENTUM,
        "weight_decay": cfg.SOLVER.WEIGHT_DECAY,
    }


def _op_name(op) -> str:
    inner = getattr(op, "transforms", None)
    return f"{type(op).__name__}({type(inner[0]).__name__})" if inner else type(op).__name__


def profile_view(view_ops, image_files, sample) -> dict:
    """Microseconds per image: decoding, each op of one view (applied in order to all images, op by
    op), and `sample(i)`: the whole dataset item (decoding, every view, the seeding wrapper)."""
    from PIL import Image

    def decode(path):
        with Image.open(path) as image:
            return image.convert("RGB")

    def timed(fn, inputs):
        start = time.perf_counter()
        outputs = [fn(x) for x in inputs]
        return outputs, 1e6 * (time.perf_counter() - start) / len(inputs)

    images, decode_us = timed(decode, image_files)
    result = {"decode": decode_us}
    for op in view_ops:
        images, result[_op_name(op)] = timed(op, images)
    result["dataset item (decode, views, wrappers)"] = timed(sample, range(len(image_files)))[1]
    return result


def ssl_lab_profile(args, count: int) -> dict:
    from ssl_lab.data import build_dataset, build_train_transform
    from ssl_lab.data.build import SeededAugmentedDataset

    cfg = ssl_lab_cfg(args, batched=False)
    transform = build_train_transform(cfg)
    dataset = SeededAugmentedDataset(build_dataset(cfg, cfg.DATASETS.TRAIN[0], transform), cfg.SEED)
    files = dataset.dataset.file_names[:count]
    return profile_view(transform.view_transforms[0].transforms, files, lambda i: dataset[(i, i)])


def lightly_profile(spec: dict, count: int) -> dict:
    from lightly.data import LightlyDataset

    transform = lightly_transform(spec)
    dataset = LightlyDataset(spec["image_dir"], transform=transform)
    files = [os.path.join(spec["image_dir"], name) for name in dataset.get_filenames()[:count]]
    return profile_view(transform.transforms[0].transform.transforms, files, lambda i: dataset[i])


def serve(step) -> None:
    """Worker loop: for each line "N" on stdin, run N iterations and answer their seconds as JSON."""
    print("ready", flush=True)
    for line in sys.stdin:
        times = []
        for _ in range(int(line)):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        print(json.dumps(times), flush=True)


class Worker:
    """One path in its own process, driven through stdin/stdout."""

    def __init__(self, command, env):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self._expect("ready")

    def _expect(self, prefix: str) -> str:
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line
        raise RuntimeError(f"worker {self.process.args} exited with {self.process.wait()}")

    def run(self, iters: int):
        self.process.stdin.write(f"{iters}\n")
        self.process.stdin.flush()
        return json.loads(self._expect("["))

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def ratio_rows(times: dict, rounds: int) -> list:
    """Per path: median s/it, and its ratio to lightly overall and per round."""
    rows = []
    for path in PATHS:
        overall = statistics.median(sum(times[path], [])) / statistics.median(sum(times["lightly"], []))
        per_round = [statistics.median(times[path][r]) / statistics.median(times["lightly"][r]) for r in range(rounds)]
        rows.append((path, statistics.median(sum(times[path], [])), overall, per_round))
    return rows


def worker_commands(args, spec: dict, extra=()) -> dict:
    """The command line of each path's process."""
    me = [os.path.abspath(__file__), "--config-file", args.config_file, "--threads", str(args.threads), *extra]
    return {
        "ssl_lab": [sys.executable, *me, "--worker", "ssl_lab", *args.opts],
        "ssl_lab_batched": [sys.executable, *me, "--worker", "ssl_lab_batched", *args.opts],
        "lightly": [args.lightly_python, *me, "--worker", "lightly", "--spec", json.dumps(spec)],
    }


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(TOOLS_DIR), os.environ.get("PYTHONPATH", "")]))


def compare_transforms(args) -> dict:
    """Per-op microseconds of ssl_lab's PIL recipe and of lightly's MoCoV2Transform, side by side."""
    commands = worker_commands(args, lightly_spec(args), ["--profile", str(args.profile)])
    result = {}
    for path in ("ssl_lab", "lightly"):
        lines = subprocess.run(commands[path], env=_env(), check=True, capture_output=True, text=True).stdout
        result[path] = json.loads(lines.strip().splitlines()[-1])
    print(f"microseconds per image, first {args.profile} images, one view unless named:")
    for path, ops in result.items():
        print(f"{path}: " + ", ".join(f"{name} {us:.0f}" for name, us in ops.items()))
    return result


def coordinate(args) -> dict:
    spec = lightly_spec(args)
    commands = worker_commands(args, spec)
    load_before = os.getloadavg()
    workers = {path: Worker(commands[path], _env()) for path in PATHS}
    times = {path: [] for path in PATHS}
    try:
        for r in range(args.rounds):
            for path in PATHS[r % len(PATHS) :] + PATHS[: r % len(PATHS)]:
                times[path].append(workers[path].run(args.warmup + args.iters)[args.warmup :])
                print(f"round {r + 1}/{args.rounds} {path}: {statistics.median(times[path][-1]):.3f} s/it", flush=True)
    finally:
        for worker in workers.values():
            worker.close()
    rows = ratio_rows(times, args.rounds)
    print(
        f"{spec['batch']} images x 2 views x {spec['crop_size']} px, ResNet-{spec['depth']}, queue {spec['queue']}, "
        f"{spec['workers']} loader worker(s), {args.threads or torch.get_num_threads()} torch threads; "
        f"{args.rounds} rounds x {args.iters} timed iterations per path"
    )
    print(f"load average (1 min) before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'path':<16} {'s/it':>7} {'/ lightly':>10}   per round")
    for path, seconds, ratio, per_round in rows:
        print(f"{path:<16} {seconds:7.3f} {ratio:10.3f}   " + " ".join(f"{x:.3f}" for x in per_round))
    return {
        "spec": spec,
        "times": times,
        "ratios": {path: ratio for path, _, ratio, _ in rows},
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="configs/Shapes/mocov2_r18.yaml", metavar="FILE")
    parser.add_argument(
        "--lightly-python",
        default="/work/venvs/lightly/bin/python",
        metavar="PYTHON",
        help="python of a virtual environment with lightly==1.6.0 (see BENCHMARKS.md)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=8, help="timed iterations per path and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations per path and round")
    parser.add_argument("--threads", type=int, default=0, help="torch threads of every path (default: torch's)")
    parser.add_argument("--output", default="", metavar="FILE", help="write the times and ratios as JSON")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="instead: microseconds per image of each op of one view, on the first N images"
    )
    parser.add_argument("--worker", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        default=[],
        metavar="KEY VALUE",
        help="config overrides of the ssl_lab paths (lightly follows the model, data and solver keys)",
    )
    return parser


def main(argv=None):
    args = argument_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker and args.profile:
        profile = lightly_profile(json.loads(args.spec), args.profile) if args.worker == "lightly" else ssl_lab_profile(args, args.profile)
        return print(json.dumps(profile), flush=True)
    if args.worker == "lightly":
        return serve(lightly_stepper(json.loads(args.spec)))
    if args.worker:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="ssl_lab_benchmark_lightly_") as output_dir:
            return serve(ssl_lab_stepper(args, args.worker == "ssl_lab_batched", output_dir))
    result = compare_transforms(args) if args.profile else coordinate(args)
    if args.output:
        from ssl_lab.utils.files import atomic_write

        with atomic_write(args.output, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
