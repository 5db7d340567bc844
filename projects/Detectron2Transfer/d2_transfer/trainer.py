"""detectron2's DefaultTrainer with the evaluator each test set needs."""

import os

from .d2_compat import has_compiled_ops, patch_detectron2

patch_detectron2()

from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.engine import DefaultTrainer  # noqa: E402
from detectron2.evaluation import COCOEvaluator, PascalVOCDetectionEvaluator  # noqa: E402


class Trainer(DefaultTrainer):
    """DefaultTrainer evaluating COCO-format sets (COCO, Shapes) with COCO AP, VOC with VOC AP."""

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type")
        if evaluator_type == "pascal_voc":
            return PascalVOCDetectionEvaluator(dataset_name)
        if evaluator_type == "coco":
            output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
            # The fast COCOeval lives in detectron2's compiled ops; the pure-Python
            # install (`make d2`) uses pycocotools' own, same numbers.
            return COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=has_compiled_ops())
        raise NotImplementedError(f"no evaluator for dataset '{dataset_name}' (evaluator_type {evaluator_type!r})")
