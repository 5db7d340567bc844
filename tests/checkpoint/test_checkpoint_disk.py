"""Checkpoints and the disk: the size estimate against a real file, a disk that fills during a
save, and a finished run whose model_final.pth is truncated."""

import errno
import os

import pytest
import torch
from torch import nn

from ssl_lab.checkpoint import Checkpointer, DiskFullError, estimate_checkpoint_bytes


def _model():
    model = nn.Sequential(nn.Linear(256, 512), nn.BatchNorm1d(512), nn.Linear(512, 128))
    model[0].requires_grad_(False)  # frozen, as a momentum encoder: no optimizer state
    return model


def _step(model, optimizer):
    model(torch.randn(4, 256)).square().mean().backward()
    optimizer.step()


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_estimate_matches_the_size_of_a_saved_checkpoint(tmp_path, momentum):
    model = _model()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=momentum)
    estimate = estimate_checkpoint_bytes(model, optimizer)  # before the first step, as the trainer calls it
    _step(model, optimizer)
    assert estimate_checkpoint_bytes(model, optimizer) == estimate  # the state the first step created
    Checkpointer(model, str(tmp_path), optimizer=optimizer).save("model_0000000", iteration=0)
    size = os.path.getsize(tmp_path / "model_0000000.pth")
    assert estimate <= size < estimate * 1.02 + 16384  # what torch.save adds: names, shapes, zip headers


def _fill_disk_after(monkeypatch, saves_that_fit: int):
    """torch.save writes part of the file, then the file's write fails with ENOSPC."""
    real_save, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) <= saves_that_fit:
            return real_save(obj, f, *args, **kwargs)
        f.write(b"PK\x03\x04 the first bytes")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save)


def test_disk_full_during_a_save_names_the_file_the_space_and_the_intact_checkpoint(tmp_path, monkeypatch):
    model = _model()
    checkpointer = Checkpointer(model, str(tmp_path))
    _fill_disk_after(monkeypatch, saves_that_fit=1)
    checkpointer.save("model_0000001", iteration=1)
    with pytest.raises(DiskFullError) as err:
        checkpointer.save("model_0000003", iteration=3)
    message = str(err.value)
    assert f"writing checkpoint {tmp_path / 'model_0000003.pth'}" in message
    assert "MiB free" in message and f"the last checkpoint {tmp_path / 'model_0000001.pth'} is intact" in message
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]  # no partial file
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    monkeypatch.undo()
    assert Checkpointer(_model(), str(tmp_path)).resume_or_load("")["iteration"] == 1


def test_resume_past_a_truncated_model_final_retags_and_rewrites_it(tmp_path):
    from types import SimpleNamespace

    from ssl_lab.engine.trainer import DefaultTrainer

    model = _model()
    checkpointer = Checkpointer(model, str(tmp_path))
    checkpointer.save("model_0000003", iteration=3)
    checkpointer.save("model_final", iteration=3)
    with open(tmp_path / "model_final.pth", "r+b") as f:
        f.truncate(100)
    resumed = Checkpointer(_model(), str(tmp_path))
    assert resumed.resume_or_load("")["iteration"] == 3
    assert resumed.resumed_past_corrupt and (tmp_path / "last_checkpoint").read_text() == "model_0000003.pth"
    # a finished run (start_iter == max_iter) has nothing to train: it rewrites model_final from the loaded state
    DefaultTrainer.train(SimpleNamespace(start_iter=4, max_iter=4, checkpointer=resumed, run_dir=SimpleNamespace(release=lambda: None)))
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    final = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert final["iteration"] == 3
    for key, value in model.state_dict().items():
        assert torch.equal(final["model"][key], value)
