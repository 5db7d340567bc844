#!/usr/bin/env python
"""Turn a training checkpoint into a model zoo file and print its catalog entry.

Keeps what feature extraction and linear evaluation need: `backbone.*` and a linear
classifier head, if any. Drops optimizer, scheduler, queues, momentum encoders and
projector/predictor heads. Writes `<name>-<sha256[:8]>.pth` and prints the YAML entry
to paste into model_zoo/catalog.yaml.

    python tools/publish_model.py output/model_final.pth --output-dir publish/ \\
        --name mocov2_r50_200ep --config-file configs/ImageNet/mocov2_r50_200ep.yaml \\
        --url-prefix https://example.org/ssl_lab/
"""

import argparse
import hashlib
import io
import os
import sys

import torch
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from ssl_lab.checkpoint.backbone_weights import PRETRAINING_HEADS, is_momentum_copy  # noqa: E402
from ssl_lab.utils.files import atomic_write  # noqa: E402


def _is_linear(state: dict, module: str) -> bool:
    keys = {k for k in state if k.startswith(module + ".")}
    return keys == {module + ".weight", module + ".bias"} and state[module + ".weight"].dim() == 2


def publishable_state(model_state: dict):
    """(kept, dropped): `backbone.*` and linear heads kept; everything else dropped."""
    kept, dropped = {}, []
    for key, value in model_state.items():
        module = key.split(".", 1)[0]
        pretraining_only = module in PRETRAINING_HEADS or is_momentum_copy(module)
        keep = key.startswith("backbone.") or (not pretraining_only and _is_linear(model_state, module))
        if keep:
            kept[key] = value.detach().cpu().clone()
        else:
            dropped.append(key)
    return kept, dropped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="an ssl_lab checkpoint (fvcore Checkpointer file with 'model')")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--name", help="catalog name and file name stem (default: the checkpoint's file name)")
    parser.add_argument("--config-file", default="", help="config that built the model, relative to the project root")
    parser.add_argument("--url-prefix", default="", help="where the file will be published (default: a file:// URL)")
    args = parser.parse_args(argv)

    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    if "model" not in checkpoint:
        parser.error(f"{args.checkpoint} has no 'model' entry (keys: {sorted(checkpoint)}); not an ssl_lab checkpoint")
    kept, dropped = publishable_state(checkpoint["model"])
    if not any(k.startswith("backbone.") for k in kept):
        parser.error(f"{args.checkpoint} has no 'backbone.*' weights")

    name = args.name or os.path.basename(args.checkpoint).split(".")[0]
    os.makedirs(args.output_dir, exist_ok=True)
    buffer = io.BytesIO()  # the file name holds the digest of the bytes: serialize, hash, then write once
    torch.save({"model": kept}, buffer)
    sha256 = hashlib.sha256(buffer.getbuffer()).hexdigest()
    output = os.path.join(args.output_dir, f"{name}-{sha256[:8]}.pth")
    with atomic_write(output) as f:
        f.write(buffer.getbuffer())

    if args.url_prefix:
        url = args.url_prefix.rstrip("/") + "/" + os.path.basename(output)
    else:
        url = "file://" + os.path.abspath(output)
    entry = {
        "config": args.config_file or "TODO: the config that built this model",
        "url": url,
        "sha256": sha256,
        "size": os.path.getsize(output),
        "format": "ssl_lab",
        "source": f"ssl_lab, published from {os.path.basename(args.checkpoint)}",
        "metrics": {"paper": {}, "measured": {}},
    }
    modules = sorted({k.split(".")[0] for k in dropped})
    print(
        f"Wrote {output}: kept {len(kept)} tensors; dropped {len(dropped)} tensors of {modules} "
        f"and the checkpoint entries {sorted(k for k in checkpoint if k != 'model')}",
        file=sys.stderr,
    )
    print(yaml.safe_dump({name: entry}, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
