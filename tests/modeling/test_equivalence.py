"""2 gloo processes (half the batch each, DDP, SyncBN) against 1 process holding the whole batch.

Compared: the losses of every step and all first-step gradients (largest difference at most
1e-3 times the tensor's largest magnitude plus 1e-6; float32 sums are reordered across ranks,
they agree to ~1e-5 relative), and after the last step the MoCo queue and pointer and the EMA
encoder's stem (1e-2; BYOL measured up to 1.3e-3). Online weights after several steps are left
out: tiny-batch BN amplifies the rounding (BYOL's stem: 0.4 % after two steps).
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from ssl_lab.config import get_cfg
from ssl_lab.engine.launch import find_free_port
from ssl_lab.modeling import build_model

from conftest import REPO_ROOT

GLOBAL_BATCH, STEPS = 8, 2


def _cfg(name):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(REPO_ROOT, "configs", "Shapes", f"{name}.yaml"))
    cfg.merge_from_list(
        [
            "MODEL.DEVICE",
            "cpu",
            "MODEL.BACKBONE.NORM",
            "SyncBN",
            "MODEL.PROJECTOR.NORM",
            "SyncBN",
            "MODEL.PREDICTOR.NORM",
            "SyncBN",
            "MODEL.PROJECTOR.HIDDEN_DIM",
            "32",
            "MODEL.PROJECTOR.OUT_DIM",
            "16",
            "MODEL.PREDICTOR.HIDDEN_DIM",
            "32",
            "MODEL.PREDICTOR.OUT_DIM",
            "16",
            "MODEL.QUEUE.SIZE",
            "16",
            "SOLVER.IMS_PER_BATCH",
            str(GLOBAL_BATCH),
        ]
    )
    return cfg


def _data():
    generator = torch.Generator().manual_seed(1)
    return [[torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=generator) for _ in range(2)] for _ in range(STEPS)]


def _train(name, model, data, rank=0, world=1):
    """STEPS SGD steps on this rank's slice; returns losses, first-step grads, final state."""
    torch.manual_seed(0)  # shuffle-BN's permutation; the result must not depend on it
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inner = model.module if isinstance(model, DistributedDataParallel) else model
    losses, first_grads = [], None
    for views in data:
        local = [v.chunk(world)[rank] for v in views]
        loss = sum(model(local).values())
        optimizer.zero_grad()
        loss.backward()
        if first_grads is None:
            first_grads = {k: p.grad.clone() for k, p in inner.named_parameters() if p.grad is not None}
        optimizer.step()
        if hasattr(inner, "momentum_update"):
            inner.momentum_update(0.9)
        reduced = loss.detach().clone()
        if world > 1:
            dist.all_reduce(reduced)
        losses.append(reduced / world)
    return {"losses": torch.stack(losses), "grads": first_grads, "state": {k: v.clone() for k, v in inner.state_dict().items()}}


def _worker(rank, port, name, data, results):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=2, rank=rank)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = DistributedDataParallel(build_model(_cfg(name)), broadcast_buffers=False)
    results[rank] = _train(name, model, data, rank, 2)
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mocov2_r18", "simclr_r18", "byol_r18"])
def test_two_processes_equal_one_process(name):
    data = _data()
    torch.manual_seed(0)
    single = _train(name, build_model(_cfg(name)), data)
    results = mp.Manager().dict()
    mp.start_processes(_worker, nprocs=2, args=(find_free_port(), name, data, results), start_method="spawn")
    for rank in range(2):
        _assert_close(results[rank]["losses"], single["losses"], "losses")
        assert results[rank]["grads"].keys() == single["grads"].keys()
        for key, grad in single["grads"].items():
            _assert_close(results[rank]["grads"][key], grad, key)
        for key in ("queue.queue", "queue.ptr", "momentum_backbone.conv1.weight"):
            if key in single["state"]:
                _assert_close(results[rank]["state"][key], single["state"][key], key, relative=1e-2)


def _assert_close(actual, expected, what, relative=1e-3):
    error = (actual.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    assert error <= relative * scale + 1e-6, f"{what}: max difference {error:.3g} vs magnitude {scale:.3g}"
