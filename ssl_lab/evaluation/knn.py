"""Weighted kNN classification of frozen features (Wu et al., 2018), the pretraining monitor.

At ImageNet size the memory bank (1.28M x 2048 fp32, 10.5 GB) is never gathered: each rank
keeps the features it extracted, on the model's device. Queries travel instead, a chunk at a
time: every rank scores the chunk against its shard, the ranks exchange their top-k, and the
merged top-k vote. Peak memory per rank is the shard plus `query_chunk x memory_chunk` similarities.
"""

import logging

import torch
import torch.nn.functional as F

from ssl_lab.utils import comm

from .evaluator import DatasetEvaluator

logger = logging.getLogger(__name__)


@torch.no_grad()
def extract_local_features(backbone, data_loader, device):
    """This rank's L2-normalized features (M_local, D) and labels (M_local,), both on `device`."""
    was_training = backbone.training
    backbone.eval()
    features, labels = [], []
    for images, targets in data_loader:
        features.append(F.normalize(backbone(images.to(device)).float(), dim=1))
        labels.append(torch.as_tensor(targets, device=device))
    backbone.train(was_training)
    return torch.cat(features), torch.cat(labels)


def extract_features(backbone, data_loader, device):
    """All ranks' L2-normalized features (M, D) and labels (M,) on the CPU, in dataset order.

    Gathers the whole split to every rank: for small splits (statistics of a validation set).
    """
    features, labels = extract_local_features(backbone, data_loader, device)
    gathered = comm.all_gather_object((features.cpu(), labels.cpu()))
    return torch.cat([f for f, _ in gathered]), torch.cat([y for _, y in gathered])


def _local_topk(queries, memory, memory_labels, k: int, memory_chunk: int):
    """Top-k similarities (Q, k') and their labels (Q, k') of `queries` in one memory shard,
    k' = min(k, M_local), scored `memory_chunk` rows at a time (running top-k)."""
    best_sim = queries.new_empty(queries.shape[0], 0)
    best_lab = memory_labels.new_empty(queries.shape[0], 0)
    for start in range(0, memory.shape[0], memory_chunk):
        sim = queries @ memory[start : start + memory_chunk].T  # (Q, chunk): the peak of this function
        sim, index = sim.topk(min(k, sim.shape[1]), dim=1)
        sim = torch.cat([best_sim, sim], dim=1)
        lab = torch.cat([best_lab, memory_labels[start + index]], dim=1)
        best_sim, index = sim.topk(min(k, sim.shape[1]), dim=1)
        best_lab = lab.gather(1, index)
    return best_sim, best_lab


def _vote(top_sim, top_labels, temperature: float, num_classes: int):
    """Class scores (Q, C) of queries from their k nearest similarities (Q, k), sorted descending, and
    those neighbours' labels (Q, k): each neighbour votes exp((cos - cos_max) / T) for its class.

    That is Wu et al.'s weight exp(cos / T) divided by the query's largest, exp(cos_max / T): every
    weight lies in [0, 1] (exp(1 / T) overflows float32 below T = 0.0113) and each query's ranking of
    the classes is unchanged. T must be a normal float32 (TEST.KNN.TEMPERATURE is checked).
    """
    weights = ((top_sim - top_sim[:, :1]) / temperature).exp()
    votes = F.one_hot(top_labels, num_classes).to(weights.dtype)
    return (votes * weights.unsqueeze(-1)).sum(dim=1)


def _gather_padded(tensor, length: int, fill):
    """all_gather of (n_r, ...) tensors with n_r <= length: (W, length, ...) padded with `fill`."""
    padded = tensor.new_full((length, *tensor.shape[1:]), fill)
    padded[: tensor.shape[0]] = tensor
    return comm.all_gather_tensor(padded.unsqueeze(0))


def sharded_knn_predict(
    memory, memory_labels, queries, k: int, temperature: float, num_classes: int, query_chunk: int = 1024, memory_chunk: int = 16384
):
    """Class scores (Q_local, C) of this rank's queries against the memory of all ranks.

    Args:
        memory: (M_local, D) normalized features of this rank's memory shard; memory_labels (M_local,).
        queries: (Q_local, D) normalized features of this rank's queries.
        query_chunk: queries scored at once over all ranks (each rank adds query_chunk // W).
        memory_chunk: memory rows per similarity block. Peak extra memory per rank is about
            query_chunk x (memory_chunk + 4 W k) floats.
    Every rank must call this (a collective). Each query's k nearest memory features over all
    shards vote as in `_vote`, as one process voting over the gathered bank would.
    """
    world = comm.get_world_size()
    per_rank = max(query_chunk // world, 1)
    counts = comm.all_gather_tensor(torch.tensor([queries.shape[0], memory.shape[0]], device=memory.device)[None])
    rounds = -(-int(counts[:, 0].max()) // per_rank)
    k = min(k, int(counts[:, 1].sum()))
    rank, scores = comm.get_rank(), []
    for r in range(rounds):
        chunk = queries[r * per_rank : (r + 1) * per_rank]
        all_queries = _gather_padded(chunk, per_rank, 0.0).flatten(0, 1)  # (W * per_rank, D)
        sim, lab = _local_topk(all_queries, memory, memory_labels, k, memory_chunk)
        sim = _gather_padded(sim.T, k, float("-inf")).permute(2, 0, 1).flatten(1)  # (W * per_rank, W * k)
        lab = _gather_padded(lab.T, k, 0).permute(2, 0, 1).flatten(1)
        mine = slice(rank * per_rank, rank * per_rank + chunk.shape[0])
        top_sim, index = sim[mine].topk(k, dim=1)
        scores.append(_vote(top_sim, lab[mine].gather(1, index), temperature, num_classes))
    return torch.cat(scores) if scores else queries.new_zeros(0, num_classes)


def topk_correct(scores, labels, ks=(1, 5)):
    """{"top{k}": number of rows whose label is among the k best scores} for each k <= number of classes."""
    hit = scores.argsort(dim=1, descending=True)[:, : max(ks)] == labels.unsqueeze(1)
    return {f"top{k}": hit[:, :k].any(dim=1).sum() for k in ks if k <= scores.shape[1]}


def topk_accuracy(scores, labels, ks=(1, 5)):
    """{"top{k}": percent} for each k <= number of classes."""
    return {name: 100.0 * correct.item() / labels.shape[0] for name, correct in topk_correct(scores, labels, ks).items()}


class KNNEvaluator(DatasetEvaluator):
    """Features of a labelled memory split vote for the labels of the query split (`data_loader`).

    The features are those of `model.backbone` (or of `model` itself if it has no backbone). Both
    loaders give each rank its own share (InferenceSampler); features stay on the model's device,
    sharded. `query_chunk` and `memory_chunk` bound the similarity blocks (TEST.KNN.*).
    """

    def __init__(
        self, memory_loader, query_loader, k: int = 200, temperature: float = 0.07, query_chunk: int = 1024, memory_chunk: int = 16384
    ):
        super().__init__(query_loader)
        self.memory_loader = memory_loader
        self.k = k
        self.temperature = temperature
        self.query_chunk = query_chunk
        self.memory_chunk = memory_chunk

    def reset(self, model):
        backbone = getattr(model, "backbone", model)
        self._memory = extract_local_features(backbone, self.memory_loader, next(model.parameters()).device)
        self._features, self._labels = [], []

    def process(self, model, images, labels):
        self._features.append(F.normalize(getattr(model, "backbone", model)(images).float(), dim=1))
        self._labels.append(labels.to(images.device))

    def evaluate(self) -> dict:
        memory, memory_labels = self._memory
        if not self._features:  # this rank's share of the query split is empty
            self._features, self._labels = [memory.new_zeros(0, memory.shape[1])], [memory_labels.new_zeros(0)]
        return self.score(memory, memory_labels, torch.cat(self._features), torch.cat(self._labels))

    def score(self, memory, memory_labels, queries, query_labels) -> dict:
        """{"knn/top1", "knn/top5"} (percent over all ranks' queries) from this rank's shards."""
        label_max = torch.cat([memory_labels, query_labels, memory_labels.new_zeros(1)]).max().reshape(1, 1)
        num_classes = int(comm.all_gather_tensor(label_max).max()) + 1
        scores = sharded_knn_predict(
            memory, memory_labels, queries, self.k, self.temperature, num_classes, self.query_chunk, self.memory_chunk
        )
        correct = topk_correct(scores, query_labels)
        totals = torch.stack([*correct.values(), torch.tensor(query_labels.shape[0], device=queries.device)])
        totals = comm.all_gather_tensor(totals[None].double()).sum(dim=0).tolist()
        results = {f"knn/{name}": 100.0 * c / totals[-1] for name, c in zip(correct, totals)}
        logger.info("kNN (k=%d, T=%.2f): %s", self.k, self.temperature, "  ".join(f"{k}: {v:.2f}" for k, v in results.items()))
        return results
