"""detectron2 transfer: key conversion, loading into detectron2 models, the CLI, a Shapes fine-tune.

The detectron2 tests skip where detectron2 is not installed, but fail in CI (CI=true),
where `make d2` must have installed it.
"""

import math
import os
import pickle
import runpy
import subprocess
import sys

import numpy as np
import pytest
import torch

from ssl_lab.checkpoint.backbone_weights import KNOWN_LAYOUTS
from ssl_lab.checkpoint.d2_conversion import (
    NoBackboneError,
    convert_to_d2,
    d2_resnet_config,
    extract_backbone_state_dict,
)
from ssl_lab.modeling.backbones import ResNet

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROJECT = os.path.join(REPO, "projects", "Detectron2Transfer")
CONVERT = os.path.join(REPO, "tools", "convert_to_d2.py")


@pytest.fixture(scope="module")
def d2():
    """The project package d2_transfer (which imports its d2_compat, then detectron2).

    Runs this module's detectron2 tests on one thread (CI shares 2 cores).
    """
    if os.environ.get("CI", "").lower() != "true":
        pytest.importorskip("detectron2", reason="detectron2 not installed (make d2)")
    sys.path.insert(0, PROJECT)
    try:
        import d2_transfer
    except ImportError as e:
        pytest.fail(f"detectron2 transfer cannot import ({e}); run `make d2`")
    finally:
        sys.path.remove(PROJECT)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield d2_transfer
    torch.set_num_threads(threads)


def _resnet_state(depth: int, width: int = 1) -> dict:
    """A ResNet state dict with random BN statistics and affines, so mix-ups show."""
    torch.manual_seed(depth)
    state = ResNet(depth, width).state_dict()
    for name, value in state.items():
        if name.endswith(("running_mean", "bias")) or (name.endswith("weight") and value.dim() == 1):
            value.normal_(0, 0.1)
        elif name.endswith("running_var"):
            value.uniform_(0.5, 1.5)
    return state


def _ssl_lab_checkpoint(state: dict) -> dict:
    model = {"backbone." + k: v for k, v in state.items()}
    model.update({"momentum_backbone." + k: v.clone() for k, v in state.items()})
    model.update(
        {
            "projector.0.weight": torch.ones(8, 4),
            "predictor.0.weight": torch.ones(4, 8),
            "momentum_projector.0.weight": torch.ones(8, 4),
            "queue.queue": torch.ones(16, 4),
            "queue.ptr": torch.zeros((), dtype=torch.long),
        }
    )
    return {"model": model, "iteration": 10}


def _moco_checkpoint(state: dict) -> dict:
    sd = {"module.encoder_q." + k: v for k, v in state.items()}
    sd.update({"module.encoder_k." + k: v.clone() for k, v in state.items()})
    sd.update(
        {
            "module.encoder_q.fc.0.weight": torch.ones(4, 4),
            "module.encoder_q.fc.0.bias": torch.ones(4),
            "module.queue": torch.ones(4, 16),
            "module.queue_ptr": torch.zeros(1, dtype=torch.long),
        }
    )
    return {"epoch": 200, "arch": "resnet50", "state_dict": sd}


def _save(obj, path) -> str:
    torch.save(obj, path)
    return str(path)


# ---------------------------------------------------------------- conversion


def test_every_checkpoint_layout_gives_the_same_backbone():
    state = _resnet_state(18)
    fc = {"fc.weight": torch.ones(10, 512), "fc.bias": torch.ones(10)}
    layouts = {
        "ssl_lab": _ssl_lab_checkpoint(state),
        "official MoCo": _moco_checkpoint(state),
        "encoder_q.": {"state_dict": {"encoder_q." + k: v for k, v in state.items()}},
        "DataParallel": {"state_dict": {"module." + k: v for k, v in {**state, **fc}.items()}},
        "torchvision": {**state, **fc},
    }
    for layout, obj in layouts.items():
        _, backbone = extract_backbone_state_dict(obj)
        assert backbone.keys() == state.keys(), layout
        assert all(torch.equal(backbone[k], state[k]) for k in state), layout


@pytest.mark.parametrize("depth,width", [(18, 1), (50, 1), (50, 2)])
def test_convert_renames_every_parameter(depth, width):
    state = ResNet(depth, width).state_dict()
    converted = convert_to_d2(state)
    assert len(converted) == len(state)
    assert all(isinstance(v, np.ndarray) for v in converted.values())
    assert converted["stem.conv1.weight"].shape == tuple(state["conv1.weight"].shape)
    np.testing.assert_array_equal(converted["stem.conv1.norm.running_var"], state["bn1.running_var"].numpy())
    np.testing.assert_array_equal(converted["res5.1.conv2.norm.weight"], state["layer4.1.bn2.weight"].numpy())
    np.testing.assert_array_equal(converted["res3.0.shortcut.weight"], state["layer2.0.downsample.0.weight"].numpy())
    np.testing.assert_array_equal(converted["res3.0.shortcut.norm.bias"], state["layer2.0.downsample.1.bias"].numpy())
    assert not any(k.startswith(("layer", "bn", "conv1", "fc")) or ".bn" in k or "downsample" in k for k in converted)
    assert ("res2.0.conv3.weight" in converted) == (depth >= 50)


def test_d2_resnet_config_reads_depth_and_width():
    assert d2_resnet_config(ResNet(18).state_dict()) == [
        "MODEL.RESNETS.DEPTH",
        18,
        "MODEL.RESNETS.STEM_OUT_CHANNELS",
        64,
        "MODEL.RESNETS.RES2_OUT_CHANNELS",
        64,
    ]
    assert d2_resnet_config(ResNet(50, 2).state_dict()) == [
        "MODEL.RESNETS.DEPTH",
        50,
        "MODEL.RESNETS.STEM_OUT_CHANNELS",
        128,
        "MODEL.RESNETS.RES2_OUT_CHANNELS",
        512,
        "MODEL.RESNETS.WIDTH_PER_GROUP",
        128,
    ]


def test_checkpoint_without_backbone_fails_clearly():
    with pytest.raises(NoBackboneError, match="no ResNet weights") as info:
        extract_backbone_state_dict({"model": {"projector.0.weight": torch.ones(2)}})
    assert "projector.0.weight (2,)" in str(info.value) and KNOWN_LAYOUTS in str(info.value)


def test_stem_without_first_stage_is_no_backbone():
    with pytest.raises(NoBackboneError, match="no ResNet backbone"):
        extract_backbone_state_dict({"conv1.weight": torch.ones(64, 3, 7, 7)})


# ---------------------------------------------------------------- CLI


def test_cli_converts_and_reports(tmp_path, capsys):
    state = _resnet_state(18)
    src = _save(_moco_checkpoint(state), tmp_path / "moco.pth.tar")
    dst = tmp_path / "out" / "moco_d2.pkl"
    assert runpy.run_path(CONVERT)["main"]([src, str(dst)]) == 0
    out = capsys.readouterr().out
    assert f"Wrote {len(state)} tensors" in out and "module.encoder_k.* " in out and "fc" in out
    assert os.listdir(dst.parent) == ["moco_d2.pkl"]  # no temp file left
    with open(dst, "rb") as f:
        data = pickle.load(f)
    assert data["__author__"] == "ssl_lab" and data["matching_heuristics"] is True
    assert data["model"].keys() == convert_to_d2(state).keys()
    np.testing.assert_array_equal(data["model"]["res2.0.conv1.weight"], state["layer1.0.conv1.weight"].numpy())


@pytest.mark.parametrize("case", ["no backbone", "missing", "not a checkpoint"])
def test_cli_bad_input_is_one_line(tmp_path, capsys, case):
    src, dst = tmp_path / "in.pth", tmp_path / "out.pkl"
    if case == "no backbone":
        _save({"model": {"projector.0.weight": torch.ones(2)}}, src)
    elif case == "not a checkpoint":
        src.write_text("hello")
    assert runpy.run_path(CONVERT)["main"]([str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") <= 15 and err.startswith(f"error: {src}: ") and not dst.exists()


@pytest.mark.slow
def test_cli_process_exits_2_without_traceback(tmp_path):
    src = _save({"model": {"projector.0.weight": torch.ones(2)}}, tmp_path / "heads_only.pth")
    proc = subprocess.run([sys.executable, CONVERT, src, str(tmp_path / "out.pkl")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"error: {src}: no ResNet weights") and proc.stderr.count("\n") <= 15
    assert KNOWN_LAYOUTS in proc.stderr


def test_importing_d2_transfer_patches_nothing_until_a_detectron2_part_is_used():
    """numpy, Pillow and sys.modules stay as they were when d2_transfer is imported (in a fresh interpreter,
    as a project or test session would); loading its Trainer applies the patches, before detectron2."""
    script = f"""
import importlib.util, sys, numpy, PIL.Image
def state():
    return (hasattr(PIL.Image, "LINEAR"), sorted(n for n in ("int", "float", "str") if n in numpy.__dict__),
            sorted(m for m in sys.modules if m.split(".")[0] in ("detectron2", "pkg_resources")))
before = state()
sys.path.insert(0, {PROJECT!r})
import d2_transfer
print(before == state(), before)
if importlib.util.find_spec("detectron2") is not None:
    from d2_transfer import Trainer
    print(state()[:2])
"""
    lines = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines[0].startswith("True")
    if len(lines) > 1:  # detectron2 installed: Pillow >= 10 and NumPy >= 1.24 get the names detectron2 v0.6 uses
        assert lines[1] == "(True, ['float', 'int', 'str'])"


# ---------------------------------------------------------------- detectron2


def _d2_cfg(d2, config: str, weights: str, opts=()):
    from detectron2.config import get_cfg

    cfg = get_cfg()
    d2.add_transfer_config(cfg)
    cfg.merge_from_file(os.path.join(PROJECT, "configs", config))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", weights, *opts])
    return cfg


def _convert_file(tmp_path, state) -> str:
    src = _save(_ssl_lab_checkpoint(state), tmp_path / "model_final.pth")
    dst = str(tmp_path / "backbone_d2.pkl")
    assert runpy.run_path(CONVERT)["main"]([src, dst]) == 0
    return dst


@pytest.mark.parametrize("config", sorted(os.listdir(os.path.join(PROJECT, "configs"))))
def test_every_config_merges(d2, config):
    cfg = _d2_cfg(d2, config, "")
    assert cfg.MODEL.BACKBONE.FREEZE_AT == 0 and not cfg.MODEL.RESNETS.STRIDE_IN_1X1
    assert cfg.INPUT.FORMAT == "RGB" and cfg.MODEL.PIXEL_STD == [58.395, 57.120, 57.375]


@pytest.mark.slow
@pytest.mark.parametrize("depth,config", [(18, "shapes_R_18_FPN_cpu.yaml"), (50, "faster_rcnn_R_50_FPN_1x_mocov2.yaml")])
def test_converted_weights_load_into_faster_rcnn(d2, tmp_path, depth, config):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    state = _resnet_state(depth)
    weights = _convert_file(tmp_path, state)
    cfg = _d2_cfg(d2, config, weights, d2_resnet_config(state))
    model = build_model(cfg)
    DetectionCheckpointer(model).load(weights)
    bottom_up = model.backbone.bottom_up
    loaded = bottom_up.state_dict()
    expected = convert_to_d2(state)
    assert loaded.keys() == expected.keys()  # nothing missing, nothing extra
    for name, value in loaded.items():
        assert torch.equal(value, torch.from_numpy(expected[name])), name
    # Same network: detectron2's res5 equals torchvision's layer4 (eval mode).
    resnet = ResNet(depth).eval()
    resnet.load_state_dict(state)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = resnet.layer4(resnet.layer3(resnet.layer2(resnet.layer1(resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))))))
        theirs = bottom_up.eval()(x)["res5"]
    torch.testing.assert_close(theirs, ours)


def test_wide_resnet_matches_detectron2_backbone(d2):
    from detectron2.layers import ShapeSpec
    from detectron2.modeling import build_resnet_backbone

    state = ResNet(50, 2).state_dict()
    cfg = _d2_cfg(d2, "faster_rcnn_R_50_FPN_1x_mocov2.yaml", "", d2_resnet_config(state))
    backbone = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    shapes = {k: tuple(v.shape) for k, v in backbone.state_dict().items()}
    assert shapes == {k: v.shape for k, v in convert_to_d2(state).items()}


@pytest.mark.slow
def test_c4_head_gets_res5_and_extra_norm(d2, tmp_path):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    state = _resnet_state(50)
    weights = _convert_file(tmp_path, state)
    model = build_model(_d2_cfg(d2, "faster_rcnn_R_50_C4_voc_24k.yaml", weights))
    DetectionCheckpointer(model).load(weights)
    res5 = model.roi_heads.res5
    assert isinstance(model.roi_heads, d2.Res5ROIHeadsExtraNorm) and hasattr(res5, "norm")
    assert torch.equal(res5[2].conv3.norm.running_var, state["layer4.2.bn3.running_var"])
    assert torch.equal(model.backbone.res4[5].conv2.weight, state["layer3.5.conv2.weight"])


@pytest.mark.slow
def test_shapes_finetune_reports_coco_ap(d2, tmp_path):
    sys.path.insert(0, PROJECT)
    try:
        from shapes_transfer import run_shapes_transfer
    finally:
        sys.path.remove(PROJECT)
    checkpoint = _save(_ssl_lab_checkpoint(_resnet_state(18)), tmp_path / "pretrained.pth")
    metrics = run_shapes_transfer(
        checkpoint,
        str(tmp_path / "run"),
        [
            "DATASETS.SHAPES.ROOT",
            str(tmp_path / "data"),
            "DATASETS.SHAPES.NUM_TRAIN",
            24,
            "DATASETS.SHAPES.NUM_VAL",
            12,
            "SOLVER.IMS_PER_BATCH",
            4,
            "SOLVER.MAX_ITER",
            20,
            "SOLVER.WARMUP_ITERS",
            5,
            "SOLVER.STEPS",
            (15,),
        ],
    )
    assert {"AP", "AP50", "AP75", "APs", "APm", "APl"} <= metrics.keys()
    for key in ("AP", "AP50", "AP75"):
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), (key, metrics)
    assert os.path.isfile(tmp_path / "run" / "inference" / "shapes_val" / "coco_instances_results.json")


@pytest.mark.slow
def test_pascal_voc_evaluation_runs(d2, tmp_path):
    """The VOC path of the trainer on a two-image VOC-layout folder, predictions = ground truth."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_pascal_voc
    from detectron2.structures import Boxes, Instances

    objects = {"000001": ("dog", [11, 21, 60, 70]), "000002": ("cat", [5, 5, 40, 30])}
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "test.txt").write_text("\n".join(objects) + "\n")
    for image_id, (name, box) in objects.items():
        coords = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
        (tmp_path / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><size><width>80</width><height>80</height></size><object><name>{name}</name>"
            f"<pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
            f"<bndbox>{coords}</bndbox></object></annotation>"
        )
    register_pascal_voc("voc_tiny_test", str(tmp_path), "test", 2007)
    MetadataCatalog.get("voc_tiny_test").evaluator_type = "pascal_voc"
    try:
        inputs = DatasetCatalog.get("voc_tiny_test")
        outputs = []
        for record in inputs:
            instances = Instances((80, 80))
            instances.pred_boxes = Boxes(torch.tensor([record["annotations"][0]["bbox"]]))
            instances.scores = torch.tensor([0.9])
            instances.pred_classes = torch.tensor([record["annotations"][0]["category_id"]])
            outputs.append({"instances": instances})
        cfg = _d2_cfg(d2, "faster_rcnn_R_50_C4_voc_24k.yaml", "")
        evaluator = d2.Trainer.build_evaluator(cfg, "voc_tiny_test")
        evaluator.reset()
        evaluator.process(inputs, outputs)
        results = evaluator.evaluate()["bbox"]
    finally:
        DatasetCatalog.remove("voc_tiny_test")
        MetadataCatalog.remove("voc_tiny_test")
    # 2 of VOC's 20 classes have objects, each found exactly: mean AP50 = 2/20.
    assert results["AP50"] == pytest.approx(10.0)
