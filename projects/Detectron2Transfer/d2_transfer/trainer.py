"""detectron2's DefaultTrainer with the evaluator each test set needs."""
import os

from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultTrainer
from detectron2.evaluation import COCOEvaluator, PascalVOCDetectionEvaluator

from .d2_compat import HAS_COMPILED_OPS


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
            return COCOEvaluator(dataset_name, output_dir=output_folder,
                                 use_fast_impl=HAS_COMPILED_OPS)
        raise NotImplementedError(f"no evaluator for dataset '{dataset_name}' "
                                  f"(evaluator_type {evaluator_type!r})")
