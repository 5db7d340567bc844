#!/usr/bin/env python
"""Write model_zoo/MODEL_ZOO.md from model_zoo/catalog.yaml.

python tools/gen_model_zoo_md.py           # regenerate
python tools/gen_model_zoo_md.py --check   # exit 1 if MODEL_ZOO.md is out of date
"""

import argparse
import os
import sys

from ssl_lab.utils.files import atomic_write
from ssl_lab.utils.model_catalog import PROJECT_ROOT, load_catalog

CATALOG = os.path.join(PROJECT_ROOT, "model_zoo", "catalog.yaml")
OUTPUT = os.path.join(PROJECT_ROOT, "model_zoo", "MODEL_ZOO.md")

HEADER = """\
# ssl_lab Model Zoo

<!-- Generated from catalog.yaml by tools/gen_model_zoo_md.py. Do not edit by hand. -->

## Use a checkpoint

```python
from ssl_lab import model_zoo

model = model_zoo.get("moco_v2_800ep")  # the config's model, backbone with published weights
features = model.backbone(images)  # (N, 2048)
model_zoo.get_config_file("moco_v2_800ep")  # the config that builds it
model_zoo.load_backbone_weights(model, "ssl_lab://torchvision_resnet50")  # or a file / URL in any format below
```

`ssl_lab://<name>` is a path: `MODEL.WEIGHTS ssl_lab://moco_v2_200ep` and
`PathManager.get_local_path("ssl_lab://moco_v2_200ep")` resolve it to the verified cached file.

## Downloads

* Files are cached in `$SSL_LAB_CACHE` (default `~/.cache/ssl_lab`) as `<host>/<path of the URL>`.
  A cached file is re-verified and used without network access.
* Every download is checked against the catalog checksum (and `Content-Length`) before it is
  renamed into the cache; a failed or interrupted download leaves nothing behind.
  http(s) URLs not in the catalog are only checked for completeness.
* Parallel processes (e.g. 8 ranks) share a file lock: one downloads, the others wait and reuse it.
* `SSL_LAB_MODEL_ZOO_URL`: a mirror. It replaces the scheme, host (and any path prefix) of catalog
  URLs: with `SSL_LAB_MODEL_ZOO_URL=http://mirror:8000/zoo`,
  `https://dl.fbaipublicfiles.com/moco/moco_checkpoints/...` is fetched from
  `http://mirror:8000/zoo/moco/moco_checkpoints/...`. `file:///srv/zoo` works too.
  Files from a mirror are verified like any other.
* `SSL_LAB_MODEL_ZOO_CATALOG`: use another catalog file (same format as `catalog.yaml`).

## Formats

`load_backbone_weights` reads ssl_lab checkpoints (`backbone.*`), official MoCo v1/v2
checkpoints (`module.encoder_q.*`), torchvision ResNets, and other ResNet state dicts whose keys
carry a prefix (`module.`, `encoder.`, `online_network.`, ...); classifier/projection heads,
momentum/target encoders and queues are dropped and a report of matched/missing/unexpected keys is logged.
For a `TimmBackbone` it reads timm state dicts (format `timm`) and official MoCo v3 checkpoints
(`module.base_encoder.*`, format `mocov3`, also for its ResNet-50), under any prefix as above.

## Publish a checkpoint

`python tools/publish_model.py output/model_final.pth --output-dir publish/ --name NAME --config-file CFG`
keeps the backbone (and a linear classifier, if any), writes `NAME-<sha256[:8]>.pth` and prints
the catalog entry to paste into `catalog.yaml`; then run `python tools/gen_model_zoo_md.py`.

## Checkpoints

Published metrics come with the checkpoint (paper / release notes); measured ones are ssl_lab's.

| Name | Config | Format | Published | Measured | Checksum | Size | Source |
| --- | --- | --- | --- | --- | --- | --- | --- |
"""


def _metrics(values: dict) -> str:
    return "<br>".join(f"{k}: {v}" for k, v in values.items()) or "–"


def _row(entry) -> str:
    config = f"[{os.path.basename(entry.config)}](../{entry.config})"
    if entry.opts:
        config += " " + " ".join(f"`{o}`" for o in entry.opts)
    size = f"{entry.size / 2**20:.1f} MiB" if entry.size else "–"
    cells = [
        f"[{entry.name}]({entry.url})",
        config,
        entry.format,
        _metrics(entry.metrics.get("paper", {})),
        _metrics(entry.metrics.get("measured", {})),
        f"{entry.checksum.algorithm}{' prefix' if entry.checksum.is_prefix else ''} `{entry.checksum.value[:16]}`",
        size,
        entry.source,
    ]
    return "| " + " | ".join(cells) + " |"


def render(catalog_path: str = CATALOG) -> str:
    """The text of MODEL_ZOO.md for the catalog at `catalog_path`."""
    return HEADER + "".join(_row(e) + "\n" for e in load_catalog(catalog_path).values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that MODEL_ZOO.md is up to date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        with open(OUTPUT) as f:
            if f.read() != text:
                print(f"{OUTPUT} is out of date: run python tools/gen_model_zoo_md.py", file=sys.stderr)
                return 1
        return 0
    with atomic_write(OUTPUT, "w") as f:
        f.write(text)
    print(f"Wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
