"""Multi-crop (INPUT.MULTI_CROP): local crops on both augmentation paths, seeded by stream position;
the crop pairing of BYOL and SiMo against float64 references; Shapes configs that resume bitwise."""

import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as T

from ssl_lab.config import get_cfg
from ssl_lab.data import build_train_dataset, build_train_loader
from ssl_lab.data.batched_augment import BatchedRandomResizedCrop, build_batched_augmentation
from ssl_lab.data.transforms import build_train_transform
from ssl_lab.modeling import build_model

from resume_testing import _cfg, assert_kill_and_resume_is_bitwise


def _crop_cfg(num_local=3, recipe="LinearEval", *extra):
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "INPUT.AUGMENTATION",
            recipe,
            "INPUT.CROP_SIZE",
            "24",
            "INPUT.MULTI_CROP.NUM_LOCAL",
            str(num_local),
            "INPUT.MULTI_CROP.LOCAL_SIZE",
            "12",
            "INPUT.MULTI_CROP.LOCAL_SCALE",
            "(0.05, 0.3)",
            *extra,
        ]
    )
    return cfg


def _image(seed=0, size=40):
    pixels = torch.randint(0, 256, (size, size, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def test_pil_local_crops_follow_the_global_views_with_their_own_size_and_scale():
    """Reference: the LinearEval recipe written out by hand with the local crop's size and scale,
    drawn after the two global views from the same seeded generator."""
    image = _image()
    torch.manual_seed(3)
    views = build_train_transform(_crop_cfg())(image)
    torch.manual_seed(3)
    global_only = build_train_transform(_crop_cfg(num_local=0))(image)
    local = T.Compose(
        [
            T.RandomResizedCrop(12, scale=(0.05, 0.3)),
            T.RandomHorizontalFlip(),
            T.PILToTensor(),  # INPUT.NORMALIZE_ON_DEVICE: the workers ship the uint8 pixels
        ]
    )
    expected_locals = [local(image) for _ in range(3)]  # the generator continues after the global views
    assert [tuple(v.shape) for v in views] == [(3, 24, 24)] * 2 + [(3, 12, 12)] * 3
    assert all(torch.equal(a, b) for a, b in zip(views[:2], global_only))  # adding local crops keeps the globals
    assert all(torch.equal(a, b) for a, b in zip(views[2:], expected_locals))


def test_batched_local_crops_have_their_size_and_scale_and_keep_the_global_views():
    images = torch.randint(0, 256, (4, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    cfg = _crop_cfg(2, "BYOL", "INPUT.CROP_SIZE", "32", "INPUT.TEST_RESIZE", "32")
    augment = build_batched_augmentation(cfg)
    views = augment(images, torch.Generator().manual_seed(5))
    global_only = build_batched_augmentation(_crop_cfg(0, "BYOL", "INPUT.CROP_SIZE", "32"))(images, torch.Generator().manual_seed(5))
    assert [tuple(v.shape) for v in views] == [(4, 3, 32, 32)] * 2 + [(4, 3, 12, 12)] * 2
    assert all(torch.equal(a, b) for a, b in zip(views[:2], global_only))
    crops = [view[0] for view in augment.views]
    assert all(isinstance(c, BatchedRandomResizedCrop) for c in crops)
    assert [(c.size, c.scale) for c in crops] == [(32, (0.2, 1.0))] * 2 + [(12, (0.05, 0.3))] * 2
    # BYOL's asymmetric views cycle in the local crops too: local 1 blurs always, local 2 solarizes
    assert [type(op).__name__ for op in augment.views[3]][-3:] == ["BatchedSolarize", "BatchedHorizontalFlip", "BatchedNormalize"]


@pytest.mark.parametrize("batched_augmentation", [False, True])
def test_a_resumed_loader_and_trainer_see_the_same_crops(tiny_cfg, batched_augmentation):
    """Batch 2 of a run from iteration 0 equals the first batch of a run resumed at iteration 2,
    local crops included (PIL path: the loader; batched path: the trainer's seeded views)."""
    cfg = tiny_cfg(
        "configs/Shapes/byol_r18_multicrop.yaml",
        "INPUT.BATCHED_AUGMENTATION",
        str(batched_augmentation),
        "INPUT.MULTI_CROP.LOCAL_SIZE",
        "16",
    )
    dataset = build_train_dataset(cfg)
    if not batched_augmentation:
        fresh = iter(build_train_loader(cfg, dataset))
        batches = [next(fresh) for _ in range(3)]
        resumed = next(iter(build_train_loader(cfg, dataset, start_iter=2)))
        assert len(resumed[0]) == 6 and tuple(resumed[0][-1].shape[-2:]) == (16, 16)
        assert all(torch.equal(a, b) for a, b in zip(resumed[0], batches[2][0]))
        return
    from ssl_lab.engine import SimpleTrainer

    model = build_model(cfg)
    views = []
    for start in (0, 2):
        trainer = SimpleTrainer(
            model,
            build_train_loader(cfg, dataset, start_iter=start),
            None,
            batch_augmentation=build_batched_augmentation(cfg),
            augmentation_seed=cfg.SEED,
        )
        for trainer.iter in range(start, 3):
            batch, _ = trainer._load_batch()
        views.append(batch["views"])
    assert len(views[1]) == 6 and tuple(views[1][-1].shape[-2:]) == (16, 16)
    assert all(torch.equal(a, b) for a, b in zip(views[0], views[1]))


def _cos_loss64(p, z):
    p, z = p.double(), z.double()
    return (2 - 2 * (p * z).sum(1) / (p.norm(dim=1) * z.norm(dim=1))).mean()


def test_byol_pairs_every_crop_with_each_other_global_target(tiny_cfg):
    """Reference: solo-learn's pairing written as a float64 double loop over (target v1 in the global
    crops, query v2 != v1 in all crops), on the model's own predictions and targets."""
    cfg = tiny_cfg("configs/Shapes/byol_r18_multicrop.yaml", "INPUT.MULTI_CROP.NUM_LOCAL", "3")
    torch.manual_seed(0)
    model = build_model(cfg)
    g = torch.Generator().manual_seed(1)
    views = [torch.randn(4, 3, 32, 32, generator=g) for _ in range(2)] + [torch.randn(4, 3, 16, 16, generator=g) for _ in range(3)]
    loss = model(views)["loss_byol"]
    with torch.no_grad():
        p = list(model.predict(torch.cat(views[:2])).chunk(2)) + list(model.predict(torch.cat(views[2:])).chunk(3))
        z = model.momentum_embed(torch.cat(views[:2])).chunk(2)
    expected = sum(_cos_loss64(p[v2], z[v1]) for v1 in range(2) for v2 in range(5) if v2 != v1)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert len([1 for v1 in range(2) for v2 in range(5) if v2 != v1]) == 8


def test_simo_local_crops_are_extra_queries_against_view_2_keys(shapes_root, tmp_path):
    """Reference: EqCo's loss written out in float64 (cross-entropy over [s+, s_i + log(alpha/K)]) for
    view 1 and each local crop against the keys of view 2, averaged over the query crops."""
    cfg = _cfg(
        "projects/SiMo/configs/shapes_r18_multicrop.yaml",
        str(tmp_path),
        shapes_root,
        "INPUT.MULTI_CROP.NUM_LOCAL",
        "2",
        "MODEL.NEGATIVE_SAMPLER.NAME",
        "AllNegatives",
        "SOLVER.IMS_PER_BATCH",
        "6",
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    g = torch.Generator().manual_seed(1)
    n = 6
    views = [torch.randn(n, 3, 32, 32, generator=g) for _ in range(2)] + [torch.randn(n, 3, 16, 16, generator=g) for _ in range(2)]
    loss = model(views)["loss_contrastive"]
    with torch.no_grad():
        embed = lambda x: F.normalize(model.projector(model.backbone(x)), dim=1).double()  # noqa: E731
        queries = [embed(views[0])] + list(embed(torch.cat(views[2:])).chunk(2))
        keys = F.normalize(model.momentum_embed(views[1]), dim=1).double()
    tau, alpha, k = cfg.MODEL.LOSS.TEMPERATURE, cfg.MODEL.EQCO.ALPHA, n - 1
    per_crop = []
    for q in queries:
        sim = q @ keys.T / tau
        total = 0.0
        for i in range(n):
            negatives = [sim[i, j] + math.log(alpha / k) for j in range(n) if j != i]
            total += -sim[i, i] + torch.logsumexp(torch.stack([sim[i, i], *negatives]), 0)
        per_crop.append(total / n)
    assert loss.item() == pytest.approx(sum(per_crop).item() / 3, rel=1e-5)


@pytest.mark.parametrize("config_file", ["configs/Shapes/mocov2_r18.yaml", "projects/MSBReg/configs/shapes_r18_k4.yaml"])
def test_methods_pairing_global_views_only_refuse_local_crops(shapes_root, tmp_path, config_file):
    cfg = _cfg(config_file, str(tmp_path), shapes_root, "INPUT.MULTI_CROP.NUM_LOCAL", "2")
    with pytest.raises(ValueError, match="INPUT.MULTI_CROP.NUM_LOCAL 0"):
        build_model(cfg)


MULTI_CROP_CONFIGS = {
    "byol_batched": ("configs/Shapes/byol_r18_multicrop.yaml",),
    "simo_pil": ("projects/SiMo/configs/shapes_r18_multicrop.yaml", "INPUT.BATCHED_AUGMENTATION", "False"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(MULTI_CROP_CONFIGS))
def test_multi_crop_shapes_config_trains_and_resumes_bitwise(shapes_root, tmp_path, case):
    config_file, *opts = MULTI_CROP_CONFIGS[case]
    opts = [*opts, "INPUT.MULTI_CROP.LOCAL_SIZE", "16", "MODEL.DEVICE", "cpu"]
    assert_kill_and_resume_is_bitwise(config_file, tmp_path, shapes_root, *opts)


def test_dry_run_reports_the_crops_their_pairing_and_the_online_probe(shapes_root, tmp_path):
    from ssl_lab.engine.dry_run import format_report, summarize

    cfg = _cfg(
        "configs/Shapes/byol_r18_multicrop.yaml",
        str(tmp_path),
        shapes_root,
        "SOLVER.IMS_PER_BATCH",
        "64",
        "TEST.ONLINE_PROBE.ENABLED",
        "True",
        "DATASETS.TEST",
        "('shapes_val',)",
    )
    cfg, summary = summarize(cfg, 8)
    assert summary["crops"] == "2 global 32 px (scale 0.5-1.0) + 4 local 32 px (scale 0.2-0.5), paired global-local"
    assert "OnlineProbe" in summary["hooks"]
    assert f"  crops: {summary['crops']}" in format_report("", cfg, summary).splitlines()
