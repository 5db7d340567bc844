"""CUDA/NCCL checks of the scale work (run by tools/gpu_check.sh; skipped without CUDA)."""

import pytest
import torch
import torch.distributed as dist

from ssl_lab.engine import AMPTrainer, HookBase, SimpleTrainer, hooks
from ssl_lab.engine.launch import find_free_port
from ssl_lab.evaluation.knn import sharded_knn_predict
from ssl_lab.utils import comm

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


class _Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(4))

    def forward(self, views):
        return {"loss": (self.w * views[0]).sum()}


def _cuda_loader(scale_at=None):
    i = 0
    while True:
        x = torch.ones(2, 4, device="cuda") * (1e35 if i == scale_at else 1.0)
        yield [x], torch.zeros(2, device="cuda")
        i += 1


class _SyncGuard(HookBase):
    """CUDA sync debug mode "error" on the steps where nothing may read the device."""

    def __init__(self, period):
        self.period = period

    def before_step(self):
        read = (self.trainer.iter + 1) % self.period == 0 or self.trainer.iter == self.trainer.max_iter - 1
        torch.cuda.set_sync_debug_mode("default" if read else "error")

    def after_train(self):
        torch.cuda.set_sync_debug_mode("default")


def test_a_cuda_step_does_not_synchronize_outside_log_periods():
    model = _Linear().cuda()
    trainer = SimpleTrainer(model, _cuda_loader(), torch.optim.SGD(model.parameters(), lr=0.1), log_period=5, non_finite_check_period=5)
    trainer.register_hooks(
        [_SyncGuard(5), hooks.IterationTimer(), hooks.PreemptionCheckpointer(None, period=5), hooks.PeriodicWriter([], period=5)]
    )
    trainer.train(0, 20)  # raises "called a synchronizing CUDA operation" on any other step
    assert trainer.storage.latest()["total_loss"][1] == 19


def test_fp16_grad_scaler_skips_an_overflowing_step_and_halves_the_scale():
    model = _Linear().cuda()
    trainer = AMPTrainer(model, _cuda_loader(scale_at=1), torch.optim.SGD(model.parameters(), lr=0.1), dtype="float16")
    trainer.train(0, 1)
    scale, after_first = trainer.grad_scaler.get_scale(), model.w.detach().clone()
    torch.testing.assert_close(after_first, torch.full((4,), 1 - 0.1 * 2, device="cuda"))  # d/dw = sum of 2 rows of 1
    trainer.train(1, 2)  # gradient 2e35 x scale overflows fp32: the scaler skips the update
    assert torch.equal(model.w.detach(), after_first) and trainer.grad_scaler.get_scale() == scale / 2


def test_sharded_knn_on_gpu_over_nccl_matches_the_float64_formula():
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{find_free_port()}", world_size=1, rank=0)
    try:
        gen = torch.Generator().manual_seed(0)
        memory = torch.nn.functional.normalize(torch.randn(50_000, 128, generator=gen), dim=1)
        labels = torch.randint(10, (50_000,), generator=gen)
        queries = torch.nn.functional.normalize(torch.randn(300, 128, generator=gen), dim=1)
        scores = sharded_knn_predict(memory.cuda(), labels.cuda(), queries.cuda(), 20, 0.07, 10, query_chunk=128, memory_chunk=8192)
        assert scores.is_cuda and comm.collective_device().type == "cuda"
        top_sim, top_idx = (queries.double() @ memory.double().T).topk(20, dim=1)
        expected = torch.zeros(300, 10, dtype=torch.float64).scatter_add_(1, labels[top_idx], (top_sim / 0.07).exp())
        shares = scores.cpu().double() / scores.cpu().double().sum(dim=1, keepdim=True)  # scaled per query
        torch.testing.assert_close(shares, expected / expected.sum(dim=1, keepdim=True), rtol=1e-4, atol=0)
    finally:
        dist.destroy_process_group()
