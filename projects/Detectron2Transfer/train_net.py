#!/usr/bin/env python
"""Fine-tune a converted backbone with detectron2 and evaluate it (COCO, Pascal VOC, Shapes).

    python tools/convert_to_d2.py CHECKPOINT output/d2_weights/mocov2_R_50.pkl
    python projects/Detectron2Transfer/train_net.py --num-gpus 8 \
        --config-file projects/Detectron2Transfer/configs/faster_rcnn_R_50_FPN_1x_mocov2.yaml
    python projects/Detectron2Transfer/train_net.py --config-file CFG --eval-only \
        MODEL.WEIGHTS output/model_final.pth
"""

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.engine import default_argument_parser, default_setup, launch  # noqa: E402

from d2_transfer import Trainer, add_transfer_config, register_shapes  # first: patches detectron2


def setup(args):
    cfg = get_cfg()
    add_transfer_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    if any(name.startswith("shapes_") for name in cfg.DATASETS.TRAIN + cfg.DATASETS.TEST):
        register_shapes(cfg)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return Trainer.test(cfg, model)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))
