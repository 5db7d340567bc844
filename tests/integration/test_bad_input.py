"""Bad inputs, one row each: the command, the start of what it must say, its exit status, and
that OUTPUT_DIR is left byte-for-byte as it was (or absent, if it was).

Rows run `tools/train_net.py` / `tools/convert_to_d2.py` in this process (most fail before
a model is built), so the module takes seconds; the launcher's signal handling runs in
subprocesses and is marked slow.
"""

import errno
import hashlib
import logging
import math
import os
import runpy
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO_ROOT, tiny_overrides

TRAIN_NET = os.path.join(REPO_ROOT, "tools", "train_net.py")
CONVERT = os.path.join(REPO_ROOT, "tools", "convert_to_d2.py")
PLOT = os.path.join(REPO_ROOT, "tools", "plot_metrics.py")
SHAPES = os.path.join(REPO_ROOT, "configs", "Shapes", "simclr_r18.yaml")
LINEAR = os.path.join(REPO_ROOT, "configs", "Shapes", "linear_eval_r18.yaml")
MAX_LINES = 15


@dataclass
class Case:
    """`setup(tmp, out) -> argv` prepares files and returns the command's arguments."""

    name: str
    setup: Callable
    message: str
    exit_code: int = 2
    tool: str = TRAIN_NET
    out_dir: Callable = field(default=lambda tmp: os.path.join(tmp, "out"))
    unchanged: bool = True  # False: found while training, after the run was accepted and started writing
    env: dict = field(default_factory=dict)
    patch: Callable = None  # patch(monkeypatch): a fault of the machine (e.g. a full disk)
    dry_run: bool = True  # False: found in the data or a file's content, which --dry-run does not read


def _config(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def _shapes(*extra, config=SHAPES):
    """Arguments of a tiny Shapes run; `extra` KEY VALUEs override."""

    def argv(tmp, out, roots):
        return ["--config-file", config, *tiny_overrides(roots, out), "DATASETS.TEST", "()", *extra]

    return argv


def _with(prepare, argv_fn, flags=()):
    """Run `prepare(tmp, out)` (returns extra KEY VALUEs) before building the argv of `argv_fn`."""

    def argv(tmp, out, roots):
        extra = prepare(tmp, out) or []
        return [*flags, *argv_fn(tmp, out, roots), *extra]

    return argv


def _flags(flags, argv_fn):
    return lambda tmp, out, roots: [*flags, *argv_fn(tmp, out, roots)]


def _file_config(text, name="bad.yaml"):
    return lambda tmp, out, roots: ["--config-file", _config(tmp, name, text), "OUTPUT_DIR", out]


def _cycle(tmp, out, roots):
    _config(tmp, "a.yaml", "_BASE_: b.yaml\n")
    return ["--config-file", _config(tmp, "b.yaml", "_BASE_: a.yaml\n"), "OUTPUT_DIR", out]


def _finished_run(tmp, out):
    os.makedirs(out)
    torch.save({"model": {}, "iteration": 3}, os.path.join(out, "model_final.pth"))
    for name, text in (
        ("last_checkpoint", "model_final.pth"),
        ("config.yaml", "MODEL:\n  BACKBONE:\n    DEPTH: 18\n"),
        ("metrics.json", '{"iteration": 3}\n'),
        ("log.txt", "old log\n"),
    ):
        _config(out, name, text)


def _saved_run(*changes):
    """A run of `_shapes()` that saved config.yaml and a checkpoint, resumed with the KEY VALUE `changes`."""

    def argv(tmp, out, roots):
        from ssl_lab.engine import setup_cfg
        from ssl_lab.solver import resolve_schedule

        base = _shapes()(tmp, out, roots)
        logging.disable(logging.CRITICAL)  # the schedule's log line is no part of the case
        try:
            cfg = resolve_schedule(setup_cfg(SimpleNamespace(config_file=base[1], opts=base[2:])), 64)
        finally:
            logging.disable(logging.NOTSET)
        os.makedirs(out)
        _config(out, "config.yaml", cfg.dump())
        _config(out, "metrics.json", '{"iteration": 1}\n')
        torch.save({"model": {}, "iteration": 1}, os.path.join(out, "model_0000001.pth"))
        return ["--resume", *base, *changes]

    return argv


def _corrupt_run(tmp, out):
    _finished_run(tmp, out)
    with open(os.path.join(out, "model_final.pth"), "wb") as f:
        f.write(b"PK\x03\x04 truncated")


def _weights(obj_fn, name="weights.pth"):
    def prepare(tmp, out):
        path = os.path.join(tmp, name)
        obj = obj_fn()
        if isinstance(obj, bytes):
            with open(path, "wb") as f:
                f.write(obj)
        else:
            torch.save(obj, path)
        return ["MODEL.WEIGHTS", path]

    return prepare


def _r18_checkpoint():
    from ssl_lab.modeling.backbones import ResNet

    return {"model": {"backbone." + k: v for k, v in ResNet(18, small_stem=False).state_dict().items()}}


def _vit_state():
    return {
        "cls_token": torch.zeros(1, 1, 192),
        "pos_embed": torch.zeros(1, 197, 192),
        "patch_embed.proj.weight": torch.zeros(192, 3, 16, 16),
        "blocks.0.attn.qkv.weight": torch.zeros(576, 192),
    }


def _pretraining_checkpoint(*opts, config=SHAPES):
    """{'model': state dict} of the tiny Shapes model of `config` with the KEY VALUE `opts`."""

    def make():
        from ssl_lab.config import get_cfg
        from ssl_lab.modeling import build_model

        cfg = get_cfg()
        cfg.merge_from_file(config)
        cfg.merge_from_list([*tiny_overrides("unused", "unused"), "MODEL.DEVICE", "cpu", *opts])
        return {"model": build_model(cfg).state_dict(), "iteration": 3}

    return make


def _truncated_pth():
    import io

    buffer = io.BytesIO()
    torch.save(_r18_checkpoint(), buffer)
    return buffer.getvalue()[:5000]


def _bad_image_folder(tmp, out):
    root = os.path.join(tmp, "images")
    for label in ("a", "b"):
        os.makedirs(os.path.join(root, "train", label))
        for i in range(8):
            Image.fromarray(np.full((32, 32, 3), 30 * i, np.uint8)).save(os.path.join(root, "train", label, f"{i}.png"))
    _config(os.path.join(root, "train", "a"), "broken.png", "this is not a PNG")
    # one loader worker: its "Original Traceback" must be reduced to the file and the cause
    return ["DATASETS.ROOT", root, "DATASETS.TRAIN", "('imagefolder_train',)", "DATALOADER.NUM_WORKERS", "1"]


def _disk_full_at_second_save(monkeypatch):
    """The second torch.save (model_0000003.pth; period 2) runs out of space after a few bytes."""
    real_save, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 1:
            return real_save(obj, f, *args, **kwargs)
        f.write(b"PK\x03\x04")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save)


def _broken_project(tmp, out):
    """A project package whose __init__ fails on its third line."""
    os.makedirs(os.path.join(tmp, "brokenproj"))
    _config(os.path.join(tmp, "brokenproj"), "__init__.py", "import os\n\nregister(os.sep)\n")
    return ["IMPORTS", f"('{os.path.join(tmp, 'brokenproj')}',)"]


def _metrics(content, *flags):
    """A run folder whose metrics.json holds `content` (bytes or text); plot_metrics' arguments."""

    def argv(tmp, out, roots):
        os.makedirs(out)
        with open(os.path.join(out, "metrics.json"), "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())
        return [out, *[flag.format(tmp=tmp) for flag in flags]]

    return argv


def _closed_port_url(tmp, out):
    from ssl_lab.engine.launch import find_free_port

    return ["MODEL.WEIGHTS", f"http://127.0.0.1:{find_free_port()}/zoo/missing.pth"]


def _readonly_output(tmp, out):
    os.makedirs(out)
    os.chmod(out, 0o500)


def _output_is_file(tmp, out):
    _config(tmp, "taken", "a file")


def _convert(src_fn):
    return lambda tmp, out, roots: [src_fn(tmp), os.path.join(out, "r18.pkl")]


def _text_file(tmp):
    return _config(tmp, "notes.pth", "plain text, not a checkpoint")


def _heads_only(tmp):
    path = os.path.join(tmp, "heads.pth")
    torch.save({"model": {"projector.0.weight": torch.zeros(4, 4)}}, path)
    return path


CASES = [
    # ------------------------------------------------------------- config files
    Case("config is a directory", lambda tmp, out, r: ["--config-file", tmp, "OUTPUT_DIR", out], "is a directory"),
    Case("config missing", lambda tmp, out, r: ["--config-file", os.path.join(tmp, "nope.yaml")], "does not exist"),
    Case("YAML syntax error", _file_config("SOLVER:\n  BASE_LR: [0.1\n"), "is not valid YAML at line 3"),
    Case("empty config", _file_config(""), "is empty; it must be a mapping"),
    Case("top-level list", _file_config("- SOLVER\n- MODEL\n"), "is a YAML list; it must be a mapping"),
    Case("plain text", _file_config("train a resnet please\n"), "is a YAML str; it must be a mapping"),
    Case("_BASE_ cycle", _cycle, "in a cycle through _BASE_"),
    Case("unknown key", _shapes("SOLVER.BASE_RL", "0.1"), "Unknown config key 'SOLVER.BASE_RL'. Did you mean"),
    Case(
        "renamed key",
        _shapes("INPUT.GPU_AUGMENTATION", "True"),
        "Config key 'INPUT.GPU_AUGMENTATION' was renamed to 'INPUT.BATCHED_AUGMENTATION'; use the new name",
    ),
    Case(
        "renamed key in a file",
        _file_config("INPUT:\n  GPU_AUGMENTATION: True\n"),
        "Config key 'INPUT.GPU_AUGMENTATION' was renamed to 'INPUT.BATCHED_AUGMENTATION'; use the new name",
    ),
    Case("flag after overrides", _shapes("--resume"), "--resume comes after the KEY VALUE overrides"),
    Case(
        "broken module in IMPORTS", _with(_broken_project, _shapes()), "cannot be imported: NameError: name 'register' is not defined (at "
    ),
    Case(
        "machine rank not below the machine count",
        _flags(["--num-machines", "2", "--machine-rank", "2", "--dist-url", "tcp://127.0.0.1:1"], _shapes()),
        "--machine-rank 2 is not a machine of --num-machines 2; number the machines 0 .. 1",
    ),
    # ------------------------------------------------------------- numbers
    Case("batch 0", _shapes("SOLVER.IMS_PER_BATCH", "0"), "SOLVER.IMS_PER_BATCH = 0 is invalid"),
    Case("negative batch", _shapes("SOLVER.IMS_PER_BATCH", "-32"), "SOLVER.IMS_PER_BATCH = -32 is invalid"),
    Case("checkpoint period 0", _shapes("SOLVER.CHECKPOINT_PERIOD", "0"), "SOLVER.CHECKPOINT_PERIOD = 0 is invalid"),
    Case("log period 0", _shapes("LOG_PERIOD", "0"), "LOG_PERIOD = 0 is invalid"),
    Case("EMA momentum 1.5", _shapes("MODEL.MOMENTUM.BASE", "1.5"), "MODEL.MOMENTUM.BASE = 1.5 is invalid: it must be in [0, 1]"),
    Case("EMA momentum -0.5", _shapes("MODEL.MOMENTUM.BASE", "-0.5"), "MODEL.MOMENTUM.BASE = -0.5 is invalid"),
    Case("one view", _shapes("INPUT.NUM_VIEWS", "1"), "INPUT.NUM_VIEWS = 1 is invalid: it must be >= 2"),
    Case("crop 0", _shapes("INPUT.CROP_SIZE", "0"), "INPUT.CROP_SIZE = 0 is invalid"),
    Case(
        "accumulation not dividing batch",
        _shapes("SOLVER.GRAD_ACCUM_STEPS", "3"),
        "SOLVER.GRAD_ACCUM_STEPS = 3 is invalid: it must be a divisor of SOLVER.IMS_PER_BATCH (16)",
    ),
    Case("no such GPU", _shapes("MODEL.DEVICE", "cuda:99"), "MODEL.DEVICE = 'cuda:99'"),
    Case(
        "kNN K above the memory split",
        _shapes("DATASETS.TEST", "('shapes_val',)", "TEST.KNN.K", "5000"),
        "TEST.KNN.K = 5000 is more than the 64 images of the kNN memory split 'shapes_train'",
        dry_run=False,
    ),
    Case("kNN memory chunk 0", _shapes("TEST.KNN.MEMORY_CHUNK_SIZE", "0"), "TEST.KNN.MEMORY_CHUNK_SIZE = 0 is invalid"),
    Case(
        "fewer classes than the data",
        _with(_weights(_r18_checkpoint), _shapes("MODEL.CLASSIFIER.NUM_CLASSES", "3", "SOLVER.STEPS", "()", config=LINEAR)),
        "MODEL.CLASSIFIER.NUM_CLASSES = 3 but the training data ('shapes_train',) has 6 classes",
        dry_run=False,
    ),
    Case(
        "unknown augmentation",
        _shapes("INPUT.AUGMENTATION", "MoCoV3"),
        "No TRANSFORM named 'MoCoV3'. Did you mean 'MoCoV2'? Registered: BYOL, ",
    ),
    Case("unknown backbone", _shapes("MODEL.BACKBONE.NAME", "ResNt"), "No BACKBONE named 'ResNt'. Did you mean 'ResNet'?"),
    Case(
        "SimCLR K above the micro-batch",
        _shapes(
            "SOLVER.GRAD_ACCUM_STEPS", "2", "MODEL.NEGATIVE_SAMPLER.NAME", "RandomNegatives", "MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES", "20"
        ),
        "NUM_NEGATIVES = 20 is more than the 14 candidates of SimCLR's 2N - 2",
    ),
    Case(
        "kNN temperature 0",
        _shapes("TEST.KNN.TEMPERATURE", "0.0"),
        "TEST.KNN.TEMPERATURE = 0.0 is invalid: it must be finite and >= 1.1754943508222875e-38",
    ),
    Case(
        "kNN memory chunk negative",
        _shapes("TEST.KNN.MEMORY_CHUNK_SIZE", "-5"),
        "TEST.KNN.MEMORY_CHUNK_SIZE = -5 is invalid: it must be a positive number",
    ),
    Case("kNN query chunk 0", _shapes("TEST.KNN.QUERY_CHUNK_SIZE", "0"), "TEST.KNN.QUERY_CHUNK_SIZE = 0 is invalid"),
    Case("kNN memory per class negative", _shapes("TEST.KNN.MEMORY_PER_CLASS", "-1"), "TEST.KNN.MEMORY_PER_CLASS = -1 is invalid"),
    Case(
        "kNN queries the memory split",
        _shapes("DATASETS.TEST", "('shapes_train',)"),
        "DATASETS.TEST[0] = 'shapes_train' is also the kNN memory split",
    ),
    Case("host memory cache negative", _shapes("HOST_MEMORY_CACHE_MB", "-1"), "HOST_MEMORY_CACHE_MB = -1 is invalid"),
    Case(
        "host memory cache absurd",
        _shapes("HOST_MEMORY_CACHE_MB", "1000000"),
        "HOST_MEMORY_CACHE_MB = 1000000 is invalid: it must be in [0, 2047] MiB",
    ),
    Case(
        "LR step at the end of the run",
        _shapes("SOLVER.LR_SCHEDULER_NAME", "WarmupMultiStepLR", "SOLVER.STEPS", "(2, 4)"),
        "SOLVER.STEPS = (2, 4) is invalid: step 4 is at or after the end of the run (SOLVER.MAX_ITER = 4 iterations, "
        "0 .. 3), so it would never lower the lr. Give increasing steps in 1 .. 3",
    ),
    Case(
        "linear eval shortened below its steps",
        _shapes(config=LINEAR),
        "SOLVER.STEPS = (90, 120) is invalid: step 90 is at or after the end of the run (SOLVER.MAX_ITER = 4 ",
    ),
    Case(
        "LR step epoch at the end of the run",
        _shapes("SOLVER.LR_SCHEDULER_NAME", "WarmupMultiStepLR", "SOLVER.EPOCHS", "2", "SOLVER.STEP_EPOCHS", "(1, 2)"),
        "SOLVER.STEP_EPOCHS = (1, 2) is invalid: step 2 is at or after the end of the run (SOLVER.EPOCHS = 2; the run "
        "has 4 iterations), so it would never lower the lr. Give increasing steps strictly between 0 and 2",
    ),
    Case(
        "weights URL of an unknown scheme",
        _shapes("MODEL.WEIGHTS", "ftp://example.org/r50.pth"),
        "MODEL.WEIGHTS = 'ftp://example.org/r50.pth': no handler opens 'ftp://' URLs",
    ),
    # ------------------------------------------------------------- OUTPUT_DIR
    Case(
        "finished run without --resume",
        _with(lambda tmp, out: _finished_run(tmp, out), _shapes()),
        "already holds checkpoints of a run. Pass --resume",
    ),
    Case(
        "OUTPUT_DIR below a file",
        _with(_output_is_file, _shapes()),
        "is a file, not a directory",
        out_dir=lambda tmp: os.path.join(tmp, "taken", "run"),
    ),
    Case("every checkpoint corrupt", _with(_corrupt_run, _shapes(), flags=["--resume"]), "No readable checkpoint in", dry_run=False),
    Case("resume with another depth", _saved_run("MODEL.BACKBONE.DEPTH", "34"), "  MODEL.BACKBONE.DEPTH: 18 -> 34"),
    Case(
        "resume with another method",
        _saved_run("MODEL.META_ARCHITECTURE", "MoCo", "MODEL.QUEUE.NAME", "MoCoQueue"),
        "  MODEL.META_ARCHITECTURE: 'SimCLR' -> 'MoCo'",
    ),
    Case("resume with another batch", _saved_run("SOLVER.IMS_PER_BATCH", "32"), "  SOLVER.IMS_PER_BATCH: 16 -> 32"),
    Case("resume with another projector", _saved_run("MODEL.PROJECTOR.OUT_DIM", "64"), "  MODEL.PROJECTOR.OUT_DIM: 32 -> 64"),
    Case("--eval-only without weights", _flags(["--eval-only"], _shapes()), "--eval-only needs MODEL.WEIGHTS"),
    # ------------------------------------------------------------- MODEL.WEIGHTS
    Case("weights missing", _flags(["--eval-only"], _shapes("MODEL.WEIGHTS", "/nonexistent/w.pth")), "no such file"),
    Case("weights missing, training", _shapes("MODEL.WEIGHTS", "/nonexistent/w.pth"), "no such file"),
    Case("weights URL nothing opens", _shapes("MODEL.WEIGHTS", "ftp://example.org/w.pth"), "no handler opens 'ftp://'"),
    Case(
        "weights a text file",
        _with(_weights(lambda: b"hello, not weights"), _shapes(), flags=["--eval-only"]),
        "not a readable torch checkpoint: it is a text file, starting with b'hello, not weights'",
        dry_run=False,
    ),
    Case(
        "weights truncated",
        _with(_weights(_truncated_pth), _shapes(), flags=["--eval-only"]),
        "not a readable torch checkpoint",
        dry_run=False,
    ),
    Case(
        "weights of a ViT",
        _with(_weights(_vit_state), _shapes(), flags=["--eval-only"]),
        "no ResNet weights ('<prefix>conv1.weight')",
        dry_run=False,
    ),
    Case(
        "ResNet-18 weights into a ResNet-34",
        _with(_weights(_r18_checkpoint), _shapes("MODEL.BACKBONE.DEPTH", "34"), flags=["--eval-only"]),
        "do not fit the backbone (ResNet); nothing was loaded",
        dry_run=False,
    ),
    Case(
        "weights with a wider projector",
        _with(_weights(_pretraining_checkpoint("MODEL.PROJECTOR.HIDDEN_DIM", "96")), _shapes()),
        "tensors have another shape; nothing was loaded.\n  projector.0.weight: (96, 512) in the file, (64, 512) in the model",
        dry_run=False,
    ),
    Case(
        "--eval-only linear eval of a pretraining checkpoint",
        _with(_weights(_pretraining_checkpoint()), _shapes(config=LINEAR), flags=["--eval-only"]),
        "holds no fc (the classifier that TEST.EVALUATORS 'Classification' scores)",
        dry_run=False,
    ),
    Case(
        "unknown model zoo name",
        _flags(["--eval-only"], _shapes("MODEL.WEIGHTS", "ssl_lab://moco_v9")),
        "Model 'moco_v9' is not in the model zoo catalog",
    ),
    Case(
        "model zoo catalog missing",
        _flags(["--eval-only"], _shapes("MODEL.WEIGHTS", "ssl_lab://moco_v2_200ep")),
        "Model zoo catalog '/nonexistent/catalog.yaml' cannot be read",
        env={"SSL_LAB_MODEL_ZOO_CATALOG": "/nonexistent/catalog.yaml"},
    ),
    Case("download refused", _with(_closed_port_url, _shapes(), flags=["--eval-only"]), "Download of http://127.0.0.1:", dry_run=False),
    # ------------------------------------------------------------- images
    Case("undecodable image", _with(_bad_image_folder, _shapes()), "Cannot decode image '", unchanged=False, dry_run=False),
    # ------------------------------------------------------------- disk
    Case(
        "disk fills during a checkpoint", _shapes(), "the last checkpoint ", unchanged=False, patch=_disk_full_at_second_save, dry_run=False
    ),
    # ------------------------------------------------------------- plot_metrics
    Case("plot: binary metrics.json", _metrics(b"\x89PNG\r\n\x1a\n\x00\xff\xfe"), "is not a text file", tool=PLOT),
    Case(
        "plot: JSON arrays",
        _metrics("[1, 2, 3]\n[4]\n"),
        "holds no metrics: 2 malformed lines (first: line 1: a JSON list, not an object)",
        tool=PLOT,
    ),
    Case(
        "plot: NaN iterations only",
        _metrics('{"iteration": NaN, "total_loss": 1.0}\n'),
        'holds no metrics: 1 malformed lines (first: line 1: its "iteration" is nan, not a whole number)',
        tool=PLOT,
    ),
    Case(
        "plot: unwritable output",
        _metrics('{"iteration": 1, "total_loss": 1.0}\n', "--output", "{tmp}/out/metrics.json/plot.png"),
        "cannot write '",
        tool=PLOT,
    ),
    # ------------------------------------------------------------- converter
    Case("convert: text file", _convert(_text_file), "error: ", tool=CONVERT, dry_run=False),
    Case("convert: heads only", _convert(_heads_only), "error: ", tool=CONVERT, dry_run=False),
]
if os.geteuid() != 0:  # root may write anywhere
    CASES.append(Case("read-only OUTPUT_DIR", _with(_readonly_output, _shapes()), "is not writable"))


def _snapshot(path: str):
    """{relative path: sha256} of every file under `path`, or None if it does not exist."""
    if not os.path.exists(path):
        return None
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    files = {}
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            with open(full, "rb") as f:
                files[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
    return files


def _run(tool, argv) -> int:
    """Exit status of `tool` run in this process with `argv`."""
    old_argv = sys.argv
    sys.argv = [tool, *argv]
    try:
        if tool in (CONVERT, PLOT):
            return runpy.run_path(tool)["main"](argv)
        runpy.run_path(tool)["run"](argv)
        return 0
    except SystemExit as e:
        return e.code
    finally:
        sys.argv = old_argv


def _check_refused(case, argv_flags, shapes_root, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SSL_LAB_DEBUG", raising=False)
    monkeypatch.setenv("SSL_LAB_CACHE", str(tmp_path / "cache"))
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    if case.patch is not None:
        case.patch(monkeypatch)
    tmp = str(tmp_path)
    out = case.out_dir(tmp)
    argv = [*argv_flags, *case.setup(tmp, out, shapes_root)]
    before = _snapshot(out)
    code = _run(case.tool, argv)
    err = capsys.readouterr().err
    assert code == case.exit_code, err
    message = [line for line in err.splitlines() if line.strip() and "Warning" not in line]
    assert message and case.message in err, err
    assert message[0].startswith(("ERROR", "error")), err  # what is wrong comes first
    assert len(message) <= MAX_LINES and "Traceback" not in err, err
    assert _snapshot(out) == before or not case.unchanged, f"OUTPUT_DIR changed: {before} -> {_snapshot(out)}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case, shapes_root, tmp_path, capsys, monkeypatch):
    _check_refused(case, [], shapes_root, tmp_path, capsys, monkeypatch)


DRY_RUN_CASES = [c for c in CASES if c.dry_run and c.tool == TRAIN_NET]


@pytest.mark.parametrize("case", DRY_RUN_CASES, ids=[c.name for c in DRY_RUN_CASES])
def test_dry_run_refuses_what_the_run_refuses(case, shapes_root, tmp_path, capsys, monkeypatch):
    _check_refused(case, ["--dry-run"], shapes_root, tmp_path, capsys, monkeypatch)


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_LAB_DEBUG", "1")
    from ssl_lab.config import ConfigError

    with pytest.raises(ConfigError, match="is empty"):
        _run(TRAIN_NET, ["--config-file", _config(str(tmp_path), "e.yaml", "")])


def test_sixteen_bit_and_palette_images_convert_by_value(tmp_path):
    from ssl_lab.data.datasets.image_folder import BadImageError, load_rgb

    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)  # 8-bit 0, 1, 128, 255
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    np.testing.assert_array_equal(np.asarray(load_rgb(str(tmp_path / "g16.png")))[0, :, 0], [0, 1, 128, 255])
    palette = Image.new("P", (2, 1))
    palette.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(np.asarray(load_rgb(str(tmp_path / "p.png")))[0], [[10, 20, 30], [200, 100, 50]])
    Image.fromarray(np.ones((2, 2), np.float32)).save(tmp_path / "f.tiff")
    with pytest.raises(BadImageError, match="floating-point pixels"):
        load_rgb(str(tmp_path / "f.tiff"))


def test_small_images_are_counted_and_warned_once(tmp_path, caplog):
    from ssl_lab.data.datasets.image_folder import RobustImageFolder

    os.makedirs(tmp_path / "c")
    for i in range(12):  # eleven 1x1 images, one 64x64
        side = 1 if i < 11 else 64
        Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(tmp_path / "c" / f"{i:02d}.png")
    dataset = RobustImageFolder(str(tmp_path), min_size=32)
    with caplog.at_level("WARNING"):
        for i in range(len(dataset)):
            dataset[i]
    assert dataset.num_small == 11
    warnings = [r.getMessage() for r in caplog.records if "smaller than the" in r.getMessage()]
    assert len(warnings) == 2 and "is 1x1" in warnings[0] and warnings[1].startswith("10 images")


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    from ssl_lab.utils.files import stale_temp_files

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f"model_0000001.pth.tmp.{dead.pid}").write_bytes(b"half")
    (tmp_path / f"model_0000002.pth.tmp.{os.getpid()}").write_bytes(b"being written")
    assert stale_temp_files(str(tmp_path)) == [str(tmp_path / f"model_0000001.pth.tmp.{dead.pid}")]
    assert (tmp_path / f"model_0000002.pth.tmp.{os.getpid()}").exists()


def test_free_space_counts_the_checkpoints_a_resume_replaces(tmp_path, monkeypatch):
    import shutil

    from ssl_lab.engine.run_directory import OutputDirError, RunDirectory

    (tmp_path / "model_0000009.pth").write_bytes(b"x" * 100)
    usage = shutil.disk_usage(tmp_path)
    # 3 kept + one being written = 400 bytes; the 100 already there are replaced, not added to
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=300))
    RunDirectory(str(tmp_path)).check_free_space(100, 3, num_periodic=10)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=299))
    with pytest.raises(OutputDirError, match="MiB free"):
        RunDirectory(str(tmp_path)).check_free_space(100, 3, num_periodic=10)
    # MAX_TO_KEEP 0 keeps all 5 periodic ones (+ model_final being written): 600 bytes; 2 periodic of 3 kept: 300
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=499))
    with pytest.raises(OutputDirError, match="MiB free"):
        RunDirectory(str(tmp_path)).check_free_space(100, 0, num_periodic=5)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=200))
    RunDirectory(str(tmp_path)).check_free_space(100, 3, num_periodic=2)


def _children(pid: int):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("signum,parent_code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -9)])
def test_signal_to_launcher_reaches_every_worker(signum, parent_code, shapes_root, tmp_path):
    """Two workers: a signal to the launcher (or its death) makes both checkpoint and exit."""
    out = str(tmp_path / "out")
    log = open(tmp_path / "stdout.txt", "w")
    argv = [
        sys.executable,
        TRAIN_NET,
        "--num-gpus",
        "2",
        *_shapes("SOLVER.MAX_ITER", "400", "SOLVER.CHECKPOINT_PERIOD", "1000")(str(tmp_path), out, shapes_root),
    ]
    parent = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "SSL_LAB_DEBUG": ""})
    try:
        deadline = time.monotonic() + 240
        while "iter: 2/" not in (tmp_path / "stdout.txt").read_text() and time.monotonic() < deadline:
            assert parent.poll() is None, (tmp_path / "stdout.txt").read_text()
            time.sleep(0.5)
        workers = _children(parent.pid)
        parent.send_signal(signum)
        assert parent.wait(timeout=120) == parent_code
        deadline = time.monotonic() + 60
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(_alive(w) for w in workers), "a worker outlived its launcher"
    finally:
        parent.kill()
        for w in _children(parent.pid) if parent.poll() is None else []:
            os.kill(w, signal.SIGKILL)
    saved = [f for f in os.listdir(out) if f.startswith("model_0")]
    assert len(saved) == 1, os.listdir(out)  # the checkpoint taken on the signal (period 1000 never fires)
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read() == saved[0]


def test_converted_weights_follow_the_umask(tmp_path):
    from ssl_lab.checkpoint.d2_conversion import convert_checkpoint_file

    src = str(tmp_path / "r18.pth")
    torch.save(_r18_checkpoint(), src)
    old = os.umask(0o027)
    try:
        convert_checkpoint_file(src, str(tmp_path / "r18.pkl"))
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "r18.pkl").st_mode & 0o777 == 0o640  # 0666 minus the umask, not mkstemp's 0600


def test_max_to_keep_also_rotates_the_checkpoints_of_earlier_runs(tmp_path):
    from types import SimpleNamespace

    from ssl_lab.checkpoint import Checkpointer
    from ssl_lab.engine.hooks import PeriodicCheckpointer

    checkpointer = Checkpointer(torch.nn.Linear(1, 1), str(tmp_path))
    for it in (1, 3, 5):  # saved by the run before the resume
        checkpointer.save(f"model_{it:07d}", iteration=it)
    hook = PeriodicCheckpointer(checkpointer, 2, max_iter=100, max_to_keep=2)
    hook.trainer = SimpleNamespace(max_iter=100, iter=7)
    hook.before_train()
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".pth")) == ["model_0000003.pth", "model_0000005.pth"]
    hook.after_step()  # saves model_0000007 and keeps the newest two
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".pth")) == ["model_0000005.pth", "model_0000007.pth"]


# ----------------------------------------------------------------- numeric checks at their boundaries
_UP, _DOWN = (lambda x: math.nextafter(x, math.inf)), (lambda x: math.nextafter(x, -math.inf))
_TINY32 = float(torch.finfo(torch.float32).tiny)  # the smallest normal float32
# key: (first valid values, first invalid values), each at the exact edge of the range it checks
BOUNDARIES = {
    "SOLVER.IMS_PER_BATCH": ([1], [0]),
    "SOLVER.GRAD_ACCUM_STEPS": ([1, 2], [0, 3]),  # IMS_PER_BATCH 256 below: 3 does not divide it
    "SOLVER.BASE_LR": ([_UP(0.0)], [0.0]),
    "SOLVER.CHECKPOINT_PERIOD": ([1], [0]),
    "SOLVER.MAX_TO_KEEP": ([0], [-1]),
    "LOG_PERIOD": ([1], [0]),
    "TEST.EVAL_PERIOD": ([0], [-1]),
    "TEST.IMS_PER_BATCH": ([1], [0]),
    "MODEL.MOMENTUM.BASE": ([0.0, 1.0], [_DOWN(0.0), _UP(1.0)]),
    "SOLVER.MOMENTUM": ([0.0, _DOWN(1.0)], [_DOWN(0.0), 1.0]),
    "SOLVER.WEIGHT_DECAY": ([0.0], [_DOWN(0.0)]),
    "INPUT.NUM_VIEWS": ([2], [1]),
    "INPUT.CROP_SIZE": ([1], [0]),  # TEST_RESIZE follows it below
    "INPUT.TEST_RESIZE": ([224], [223]),  # CROP_SIZE 224
    "INPUT.CROP_SCALE": ([(_UP(0.0), 1.0), (0.5, 0.5)], [(0.0, 1.0), (0.5, _DOWN(0.5)), (0.5, _UP(1.0))]),
    "TEST.KNN.K": ([1], [0]),
    "TEST.KNN.TEMPERATURE": ([_TINY32, _DOWN(math.inf)], [_DOWN(_TINY32), 0.0, math.inf, math.nan]),
    "TEST.KNN.QUERY_CHUNK_SIZE": ([1], [0]),
    "TEST.KNN.MEMORY_CHUNK_SIZE": ([1], [0]),
    "TEST.KNN.MEMORY_PER_CLASS": ([0], [-1]),
    "DATALOADER.NUM_WORKERS": ([0], [-1]),
    "HOST_MEMORY_CACHE_MB": ([0, 2047], [-1, 2048]),
    "TEST.LINEAR_PROBE.LRS": ([(_UP(0.0),), (0.1, 1.0)], [(), (0.0,), (0.1, _DOWN(0.0))]),
    "TEST.LINEAR_PROBE.STEPS": ([1], [0]),
    "TEST.LINEAR_PROBE.WEIGHT_DECAY": ([0.0], [_DOWN(0.0)]),
    "TEST.LINEAR_PROBE.HOLDOUT_FRACTION": ([_UP(0.0), _DOWN(1.0)], [0.0, 1.0]),
    "TEST.LINEAR_PROBE.MAX_PER_CLASS": ([0], [-1]),
    "INPUT.MULTI_CROP.NUM_LOCAL": ([0], [-1]),
    "INPUT.MULTI_CROP.LOCAL_SIZE": ([1], [0]),
    "INPUT.MULTI_CROP.LOCAL_SCALE": ([(_UP(0.0), 1.0), (0.5, 0.5)], [(0.0, 1.0), (0.5, _DOWN(0.5)), (0.5, _UP(1.0))]),
    "TEST.ONLINE_PROBE.ENABLED": ([False], [True]),  # DATASETS.TEST () below: nothing to measure it on
    "TEST.ONLINE_PROBE.NUM_CLASSES": ([2], [1]),
}


# LR steps, checked on the resolved schedule by validate() (check_lr_steps): SOLVER.STEPS in a run of
# MAX_ITER 100, SOLVER.STEP_EPOCHS in a run of EPOCHS 10 x 10 iterations.
STEP_BOUNDARIES = {
    "SOLVER.STEPS": ([(1,), (99,), (1, 2)], [(0,), (100,), (2, 2)]),
    "SOLVER.STEP_EPOCHS": ([(_UP(0.0),), (_DOWN(10.0),), (5.0, _UP(5.0))], [(0.0,), (10.0,), (5.0, 5.0)]),
}


def _checked_keys(*path):
    """The keys checked in the file at `path` under ssl_lab/ (its upper-case string arguments)."""
    import re

    with open(os.path.join(REPO_ROOT, "ssl_lab", *path)) as f:
        return set(re.findall(r'"([A-Z][A-Z_.]+)",', f.read()))


def test_every_numeric_check_has_its_boundary_row():
    assert _checked_keys("config", "checks.py") == set(BOUNDARIES)
    assert _checked_keys("solver", "schedule.py") == set(STEP_BOUNDARIES)


def _boundary_cfg(key, value):
    from ssl_lab.config import get_cfg

    cfg = get_cfg()
    cfg.SOLVER.IMS_PER_BATCH, cfg.INPUT.CROP_SIZE, cfg.INPUT.TEST_RESIZE = 256, 224, 256
    if key == "INPUT.CROP_SIZE":
        cfg.INPUT.TEST_RESIZE = value
    if key == "TEST.ONLINE_PROBE.ENABLED":
        cfg.DATASETS.TEST = ()
    node, _, name = key.rpartition(".")
    setattr(cfg if not node else eval("cfg." + node), name, value)  # noqa: S307 (a key of this table)
    return cfg


@pytest.mark.parametrize(
    "key,value,valid", [(k, v, ok) for k, (good, bad) in BOUNDARIES.items() for ok, values in ((True, good), (False, bad)) for v in values]
)
def test_numeric_check_at_its_boundary(key, value, valid):
    from ssl_lab.config import ConfigError
    from ssl_lab.config.checks import check_config

    cfg = _boundary_cfg(key, value)
    if valid:
        check_config(cfg)
    else:
        with pytest.raises(ConfigError, match=f"^{key} = "):
            check_config(cfg)


@pytest.mark.parametrize(
    "key,value,valid",
    [(k, v, ok) for k, (good, bad) in STEP_BOUNDARIES.items() for ok, values in ((True, good), (False, bad)) for v in values],
)
def test_lr_step_check_at_its_boundary(key, value, valid):
    from ssl_lab.config import ConfigError, get_cfg
    from ssl_lab.solver import build_lr_scheduler, check_lr_steps, resolve_schedule

    cfg = get_cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME, cfg.SOLVER.IMS_PER_BATCH = "WarmupMultiStepLR", 100
    if key == "SOLVER.STEPS":
        cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS = 100, value
    else:
        cfg.SOLVER.EPOCHS, cfg.SOLVER.STEP_EPOCHS = 10, value
    logging.disable(logging.CRITICAL)  # the schedule's log line
    try:
        resolved = resolve_schedule(cfg, num_images=1000)
    finally:
        logging.disable(logging.NOTSET)
    assert resolved.SOLVER.MAX_ITER == 100
    if valid:
        check_lr_steps(resolved)
        build_lr_scheduler(resolved, torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0))
    else:
        with pytest.raises(ConfigError, match=f"^{key} = "):
            check_lr_steps(resolved)


def test_plot_skips_malformed_lines_in_one_warning_and_plots_the_rest(tmp_path, capsys):
    lines = [
        '{"iteration": NaN, "total_loss": 9.0}',
        "[1, 2]",
        '{"iteration": 1, "total_loss": 2.0}',
        "not json",
        '{"iteration": 2, "total_loss": 1.0, "lr": 0.1}',
        '{"iteration": 1.5}',
    ]
    (tmp_path / "metrics.json").write_text("\n".join(lines) + "\n")
    runpy.run_path(PLOT)["main"]([str(tmp_path)])  # the lines it skips: tests/utils/test_metrics_file.py
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: skipped 4 malformed lines")
    assert (tmp_path / "metrics.png").stat().st_size > 0


def test_skipped_images_are_counted_not_warned_one_by_one(tmp_path, caplog):
    from ssl_lab.data.datasets.image_folder import BadImageError, RobustImageFolder

    os.makedirs(tmp_path / "c")
    for i in range(11):
        (tmp_path / "c" / f"{i:02d}.png").write_text("not a PNG")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "c" / "11.png")
    dataset = RobustImageFolder(str(tmp_path), on_bad_image="skip")
    with caplog.at_level("WARNING"):
        image, _ = dataset[0]
    assert image.size == (4, 4) and dataset.num_skipped == 11
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and "00.png" in warnings[0] and warnings[1].startswith("10 undecodable images")
    os.remove(tmp_path / "c" / "11.png")
    with pytest.raises(BadImageError, match=r"No decodable image in .* \(11 files tried\)"):
        RobustImageFolder(str(tmp_path), on_bad_image="skip")[0]
