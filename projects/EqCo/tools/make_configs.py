#!/usr/bin/env python
"""Write the EqCo experiment configs (the committed yaml files under projects/EqCo/configs).

    python projects/EqCo/tools/make_configs.py [--output projects/EqCo/configs]

Sweeps: K negatives per query with and without EqCo (MoCo v2: queue size K, alpha 65536 on
ImageNet; SimCLR: K random in-batch negatives per query, alpha 4096), and the N sweep of Table 1
(MoCo v2, K fixed, lr scaled linearly with N). Shapes versions are CPU-sized. Every config has
`EXTRA_HOOKS: ["EqCoMonitor"]` (in its _BASE_ chain): the check of K and the monitors of MODEL.EQCO.
"""

import argparse
import os

from ssl_lab.utils.files import atomic_write

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
CORE = "../../../../configs"  # the core's configs/, seen from configs/<dataset>/

IMAGENET_KS = (16, 64, 256, 1024, 4096, 65536)
SIMCLR_IMAGENET_KS = (16, 64, 256)  # K <= 2N - 2 = 510 at the paper's N = 256
SHAPES_KS = (16, 64, 256, 1024, 4096)
SIMCLR_SHAPES_KS = (16, 64)  # K <= 2N - 2 = 254 at N = 128

SIMCLR_SGD = """\
# SimCLR as the EqCo paper runs it (Sec. 2.3): SGD with momentum instead of LARS, N = {n} queries per
# batch, K = MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES random in-batch negatives drawn for each query.
# SGD lr 0.3 x N/256, wd 1e-6, SyncBN and zero-init residual as the official SimCLR run of the EqCo
# authors (V2AI/SelfSup examples/simclr/simclr.res50.scratch.imagenet.224size.256bs.200e/config.py).
_BASE_: "{base}"
IMPORTS: ["projects/EqCo/eqco"]
EXTRA_HOOKS: ["EqCoMonitor"]
MODEL:
  BACKBONE:
    ZERO_INIT_RESIDUAL: True
  PROJECTOR:
    # SelfSup's SimCLR head ends in cvpods' NaiveSyncBatchNorm1d(self.dim), shift included
    # (simclr.py @ 8589725); google-research/simclr's has none.
    LAST_BN_SHIFT: True
  NEGATIVE_SAMPLER:
    NAME: "RandomNegatives"
    SHARED: False
SOLVER:
  OPTIMIZER: "SGD"
  IMS_PER_BATCH: {n}
  # cvpods' WarmupCosineLR: one cosine over the whole run, scaled by the warmup factor.
  COSINE_AFTER_WARMUP: False
"""

MOCO_K = """\
# MoCo v2, {what}: K = {k} negatives per query, the queue size{small}; InfoNCE.
_BASE_: "{base}"
IMPORTS: ["projects/EqCo/eqco"]
EXTRA_HOOKS: ["EqCoMonitor"]
MODEL:
  QUEUE:
    SIZE: {k}
  EQCO:
    MONITOR_GRAD_NORM: True
OUTPUT_DIR: "{output}"
"""

SIMCLR_K = """\
# SimCLR (SGD), {what}: K = {k} random negatives per query, InfoNCE.
_BASE_: "{base}"
MODEL:
  NEGATIVE_SAMPLER:
    NUM_NEGATIVES: {k}
OUTPUT_DIR: "{output}"
"""

EQCO = """\
# {name} with EqCo: negatives weighted by alpha / K = {alpha} / {k}, mimicking K = {alpha}.
_BASE_: "{base}.yaml"
MODEL:
  LOSS:
    NAME: "EqCoLoss"
  EQCO:
    ALPHA: {alpha}
OUTPUT_DIR: "{output}"
"""

N_SWEEP = """\
# MoCo v2, {what}, Table 1: N = {n} queries per batch, K = {k} fixed; lr = BASE_LR * N / 256.
_BASE_: "{base}.yaml"
SOLVER:
  IMS_PER_BATCH: {n}
{extra}OUTPUT_DIR: "{output}"
"""


def _k_sweep(files, dataset, prefix, template, base, ks, alpha, what, batch):
    for k in ks:
        name = f"{prefix}_k{k}"
        small = f" (< N = {batch}: {k} random keys of the previous batch)" if k < batch else ""
        files[f"{dataset}/{name}.yaml"] = template.format(
            what=what, k=k, small=small, base=base, output=f"output/eqco/{dataset.lower()}/{name}"
        )
        files[f"{dataset}/{name}_eqco.yaml"] = EQCO.format(
            name=name, alpha=alpha, k=k, base=name, output=f"output/eqco/{dataset.lower()}/{name}_eqco"
        )


def _n_sweep(files, dataset, prefix, k, ns, what, extra=lambda n: ""):
    for n in ns:
        name = f"{prefix}_n{n}"
        files[f"{dataset}/{name}.yaml"] = N_SWEEP.format(
            what=what, n=n, k=k, base=f"{prefix}_k{k}", extra=extra(n), output=f"output/eqco/{dataset.lower()}/{name}"
        )


def build_configs() -> dict:
    """{relative path: yaml text} of every EqCo config."""
    files = {}
    imagenet = "ImageNet R50 200 epochs"
    _k_sweep(files, "ImageNet", "mocov2_r50_200ep", MOCO_K, f"{CORE}/ImageNet/mocov2_r50_200ep.yaml", IMAGENET_KS, 65536, imagenet, 256)
    _n_sweep(files, "ImageNet", "mocov2_r50_200ep", 65536, (512, 1024), imagenet)
    files["ImageNet/Base-SimCLR-SGD.yaml"] = SIMCLR_SGD.format(n=256, base=f"{CORE}/ImageNet/simclr_r50_200ep.yaml")
    _k_sweep(files, "ImageNet", "simclr_r50_200ep", SIMCLR_K, "Base-SimCLR-SGD.yaml", SIMCLR_IMAGENET_KS, 4096, imagenet, 256)

    shapes = "Shapes R18 (CPU)"
    _k_sweep(files, "Shapes", "mocov2_r18", MOCO_K, f"{CORE}/Shapes/mocov2_r18.yaml", SHAPES_KS, 4096, shapes, 128)
    # Same number of epochs at every N: iterations and warmup scale with 128 / N.
    _n_sweep(
        files,
        "Shapes",
        "mocov2_r18",
        4096,
        (64, 256),
        shapes,
        extra=lambda n: f"  MAX_ITER: {400 * 128 // n}\n  WARMUP_ITERS: {20 * 128 // n}\n",
    )
    files["Shapes/Base-SimCLR-SGD.yaml"] = SIMCLR_SGD.format(n=128, base=f"{CORE}/Shapes/simclr_r18.yaml")
    _k_sweep(files, "Shapes", "simclr_r18", SIMCLR_K, "Base-SimCLR-SGD.yaml", SIMCLR_SHAPES_KS, 4096, shapes, 128)
    return files


def write_configs(output: str) -> list:
    """Write every config under `output`; returns the written paths."""
    paths = []
    for rel, text in build_configs().items():
        path = os.path.join(output, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_write(path, "w") as f:
            f.write(text)
        paths.append(path)
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=CONFIG_DIR, help="configs directory (default: the project's)")
    print(f"Wrote {len(write_configs(parser.parse_args().output))} configs")
