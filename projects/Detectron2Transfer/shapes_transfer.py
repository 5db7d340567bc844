#!/usr/bin/env python
"""Convert a pretrained backbone, fine-tune it for Shapes detection on CPU, print box AP.

    python projects/Detectron2Transfer/shapes_transfer.py --weights output/byol/model_final.pth \
        --output-dir output/shapes_det/byol
    python projects/Detectron2Transfer/shapes_transfer.py --output-dir output/shapes_det/random

configs/shapes_R_18_FPN_cpu.yaml is the recipe; the backbone depth and width follow the
checkpoint. Without --weights the ResNet-18 starts from random init.
"""

import argparse
import os
import sys

from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.utils.env import seed_all_rng  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from d2_transfer import Trainer, add_transfer_config, register_shapes  # first: patches detectron2
from ssl_lab.checkpoint.d2_conversion import convert_checkpoint_file  # noqa: E402

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "shapes_R_18_FPN_cpu.yaml")
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


VAL_SUBSET_PREFIX = "shapes_val_first"  # "shapes_val_first200": the first 200 images of shapes_val


def val_subset_name(num_images: int) -> str:
    return f"{VAL_SUBSET_PREFIX}{num_images}"


def register_val_subset(num_images: int) -> str:
    """Register the first `num_images` images of "shapes_val" (registered already) as a dataset of
    their own, with its classes; COCOEvaluator writes the subset's ground truth itself."""
    name = val_subset_name(num_images)
    full = DatasetCatalog.get("shapes_val")  # loading it fills in the class metadata
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: full[:num_images])
    source = MetadataCatalog.get("shapes_val")
    MetadataCatalog.get(name).set(
        thing_classes=source.thing_classes,
        evaluator_type="coco",
        thing_dataset_id_to_contiguous_id=source.thing_dataset_id_to_contiguous_id,
    )
    return name


def shapes_cfg(weights: str, output_dir: str, opts=(), val_images: int = 0):
    """
    The frozen config of a Shapes transfer run; converts `weights` (a pretraining
    checkpoint: ssl_lab, official MoCo or torchvision, path or URL; "" = random init)
    into output_dir/backbone_d2.pkl and sets the backbone's depth and width from it.
    `opts` are more detectron2 config options, e.g. ["SOLVER.MAX_ITER", 100]; `val_images` > 0
    evaluates on the first that many validation images only (the demo's quick look).
    """
    cfg = get_cfg()
    add_transfer_config(cfg)
    cfg.merge_from_file(CONFIG)
    if weights:
        converted = os.path.join(output_dir, "backbone_d2.pkl")
        cfg.merge_from_list(convert_checkpoint_file(weights, converted)["d2_opts"])
        weights = converted
    cfg.merge_from_list(["MODEL.WEIGHTS", weights, "OUTPUT_DIR", output_dir, *opts])
    if val_images > 0:
        cfg.DATASETS.TEST = (val_subset_name(val_images),)
    cfg.freeze()
    return cfg


def train_and_evaluate(cfg) -> dict:
    """
    Fine-tune on shapes_train, evaluate on shapes_val.

    Returns:
        COCO box metrics: "AP", "AP50", "AP75", "APs", "APm", "APl" and "AP-<class>"
        (APl is NaN: 64 px images hold no large objects).
    """
    register_shapes(cfg)
    for name in cfg.DATASETS.TEST:
        if name.startswith(VAL_SUBSET_PREFIX):
            register_val_subset(int(name[len(VAL_SUBSET_PREFIX) :]))
    seed_all_rng(cfg.SEED)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    # DefaultTrainer evaluates after the last iteration and keeps the results here.
    return trainer._last_eval_results["bbox"]


def run_shapes_transfer(weights: str, output_dir: str, opts=(), val_images: int = 0) -> dict:
    """Convert `weights` ("" = random init), fine-tune and evaluate (on the first `val_images`
    validation images if > 0); returns the box metrics."""
    return train_and_evaluate(shapes_cfg(weights, output_dir, opts, val_images))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default="", help="pretraining checkpoint; omit for random init")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--val-images", type=int, default=0, help="evaluate on the first N val images (0: all)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="detectron2 config options: KEY VALUE ...")
    args = parser.parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    setup_logger(args.output_dir)
    try:
        cfg = shapes_cfg(args.weights, args.output_dir, args.opts, args.val_images)
    except (OSError, ValueError) as e:  # unreadable or backbone-less checkpoint, bad option
        print(f"error: {e}", file=sys.stderr)
        return 2
    metrics = train_and_evaluate(cfg)
    print(f"Shapes box AP ({args.weights or 'random init'}): " + "  ".join(f"{k} {metrics[k]:.1f}" for k in METRICS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
