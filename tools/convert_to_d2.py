#!/usr/bin/env python
"""Convert the ResNet of a pretraining checkpoint to detectron2 weights.

    python tools/convert_to_d2.py output/model_final.pth output/r50_d2.pkl
    python tools/convert_to_d2.py moco_v2_200ep_pretrain.pth.tar moco_v2_d2.pkl

Reads ssl_lab, official MoCo and torchvision checkpoints (paths or URLs); keeps the
query/online backbone; fine-tune with projects/Detectron2Transfer/train_net.py.
"""

import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ssl_lab.checkpoint.d2_conversion import convert_checkpoint_file  # noqa: E402
from ssl_lab.utils.errors import UserError  # noqa: E402


def _group(key: str, prefix: str) -> str:
    """What a dropped key belongs to: 'momentum_backbone', 'module.encoder_k', 'backbone.fc'."""
    head = next(h for h in (prefix, "module.", "") if key.startswith(h))
    return head + key[len(head) :].split(".")[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", help="checkpoint (.pth/.pth.tar), local path or URL")
    parser.add_argument("output", help="detectron2 weights to write (.pkl)")
    args = parser.parse_args(argv)
    try:
        result = convert_checkpoint_file(args.input, args.output)
    except (UserError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    dropped = collections.Counter(_group(k, result["prefix"]) for k in result["dropped"])
    print(f"Wrote {len(result['weights'])} tensors to {args.output} (backbone found under prefix '{result['prefix']}').")
    print("Dropped {} keys: {}".format(len(result["dropped"]), ", ".join(f"{g}.* ({n})" for g, n in sorted(dropped.items())) or "none"))
    print("detectron2 options for this backbone: " + " ".join(map(str, result["d2_opts"])))
    stem = result["weights"]["stem.conv1.weight"].shape
    if stem[-1] != 7:
        print(
            f"warning: conv1 is {stem[-1]}x{stem[-1]} (small-image stem); detectron2's stem is 7x7, so stem.conv1.weight will not load.",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
