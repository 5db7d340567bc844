"""Evaluators: the registry, the reset/process/evaluate protocol on hand-computed cases, and --eval-only's files."""

import pytest
import torch
from torch import nn

from ssl_lab.evaluation import (
    EVALUATOR_REGISTRY,
    ClassificationEvaluator,
    DatasetEvaluator,
    KNNEvaluator,
    build_evaluators,
    inference_on_dataset,
    inference_on_evaluators,
)


class _Features(nn.Module):
    """A model whose backbone returns the image tensor flattened, and whose classifier is the identity."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Flatten()
        self.scale = nn.Parameter(torch.ones(()))  # gives the model a device

    def classify(self, images):
        return self.backbone(images) * self.scale


def _loader(features, labels, batch=2):
    """Batches of (images (B, D, 1, 1), labels (B,)), images being the given features."""
    images = torch.tensor(features, dtype=torch.float32)[:, :, None, None]
    labels = torch.tensor(labels)
    return [(images[i : i + batch], labels[i : i + batch]) for i in range(0, len(labels), batch)]


def test_classification_top1_by_hand():
    # Scores of 3 classes; argmax: 0, 2, 1, 1 against labels 0, 2, 2, 1 -> 3 of 4 right.
    scores = [[3, 1, 0], [0, 1, 2], [0, 5, 1], [1, 2, 0]]
    evaluator = ClassificationEvaluator(_loader(scores, [0, 2, 2, 1]))
    assert inference_on_dataset(_Features(), evaluator) == {"top1": 75.0}  # top5 needs >= 5 classes


def test_knn_votes_by_hand():
    # Memory: two points of class 0 near (1, 0), one of class 1 at (0, 1). k = 1: each query takes the
    # label of its nearest memory point (cosine): (0.9, 0.1) -> 0, (0.2, 1) -> 1, (1, 0.05) -> 0.
    memory = _loader([[1, 0], [1, 0.1], [0, 1]], [0, 0, 1])
    queries = _loader([[0.9, 0.1], [0.2, 1], [1, 0.05]], [0, 1, 1])
    results = inference_on_dataset(_Features(), KNNEvaluator(memory, queries, k=1, temperature=0.1))
    assert results == {"knn/top1": pytest.approx(200 / 3)}


def test_model_mode_is_restored_and_reset_forgets_the_last_run():
    model = _Features().train()
    evaluator = ClassificationEvaluator(_loader([[1, 0], [0, 1]], [0, 1]))
    assert inference_on_dataset(model, evaluator) == {"top1": 100.0}
    evaluator.data_loader = _loader([[1, 0], [1, 0]], [0, 1])
    assert inference_on_dataset(model, evaluator) == {"top1": 50.0}  # 75 if the first run's samples stayed
    assert model.training


class _Counter(DatasetEvaluator):
    def reset(self, model):
        self.count = 0

    def process(self, model, images, labels):
        self.count += len(labels)

    def evaluate(self):
        return {"count": float(self.count)}


def TestCountImages(cfg):  # noqa: N802 (a registered name)
    return _Counter(_loader([[1, 0]] * 5, [0] * 5))


def test_projects_register_evaluators_built_from_test_evaluators(tiny_cfg):
    if "TestCountImages" not in EVALUATOR_REGISTRY:
        EVALUATOR_REGISTRY.register(TestCountImages)
    cfg = tiny_cfg("configs/Shapes/byol_r18.yaml", "TEST.EVALUATORS", '("Classification", "TestCountImages")')
    evaluators = build_evaluators(cfg)
    assert [type(e).__name__ for e in evaluators] == ["ClassificationEvaluator", "_Counter"]
    assert inference_on_evaluators(_Features(), evaluators[1:]) == {"count": 5.0}
    with pytest.raises(ValueError, match="reports \\['count'\\]"):
        inference_on_evaluators(_Features(), [evaluators[1], evaluators[1]])
    cfg.DATASETS.TEST = ()
    assert build_evaluators(cfg) == []


def _rank_results(rank, port, memory, queries, results):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=2, rank=rank)
    half = lambda rows: rows[rank::2]  # noqa: E731  (each rank reads every other sample, as InferenceSampler)
    knn = KNNEvaluator(_loader(*map(half, memory)), _loader(*map(half, queries)), k=2, temperature=0.1)
    classification = ClassificationEvaluator(_loader(*map(half, queries)))
    results[rank] = inference_on_evaluators(_Features(), [knn, classification])
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_report_what_one_process_reports_on_the_whole_split():
    """evaluate() combines the ranks' shares: both ranks get the single-process result."""
    import torch.multiprocessing as mp

    from ssl_lab.engine.launch import find_free_port

    g = torch.Generator().manual_seed(0)
    memory = (torch.randn(10, 3, generator=g).tolist(), torch.randint(0, 3, (10,), generator=g).tolist())
    queries = (torch.randn(9, 3, generator=g).tolist(), torch.randint(0, 3, (9,), generator=g).tolist())
    single = inference_on_evaluators(
        _Features(), [KNNEvaluator(_loader(*memory), _loader(*queries), k=2, temperature=0.1), ClassificationEvaluator(_loader(*queries))]
    )
    results = mp.Manager().dict()
    mp.start_processes(_rank_results, nprocs=2, args=(find_free_port(), memory, queries, results), start_method="spawn")
    assert results[0] == results[1] == pytest.approx(single)
    assert set(single) == {"knn/top1", "top1"}
