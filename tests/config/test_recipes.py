"""Shipped configs against the official recipes, and every config built at its real size.

The recipe tables (recipes.yaml, projects/*/recipes.yaml) hold the official values; every value
cites the official line it comes from (file, commit, line number, the line's text), and the checks
below read the value in that quoted text, not in a table of ours. `resolved` holds numbers worked
out by hand from them (ImageNet's 1,281,167 images, 8 processes). Models are built on the meta
device: ResNet-50 at its real widths, no memory, no initialization.
"""

import copy
import functools
import glob
import math
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import yaml

from ssl_lab.engine import setup_cfg, validate
from ssl_lab.engine.dry_run import compare_with_recipe, load_recipes, summarize

from conftest import REPO_ROOT, lr_trajectory, tiny_overrides

ROWS = load_recipes()
TABLE_PATHS = sorted(
    glob.glob(os.path.join(REPO_ROOT, "recipes.yaml")) + glob.glob(os.path.join(REPO_ROOT, "projects", "*", "recipes.yaml"))
)
D2_PROJECT = os.path.join(REPO_ROOT, "projects", "Detectron2Transfer")
# Files that only complete a config through a _BASE_ chain: they do not build on their own.
PARTIAL_BASES = {
    "projects/EqCo/configs/ImageNet/Base-SimCLR-SGD.yaml",  # K comes from the file that includes it
    "projects/EqCo/configs/Shapes/Base-SimCLR-SGD.yaml",
    "projects/MSBReg/configs/Base-MSBReg.yaml",  # the method's keys, on top of a pretraining config
    "projects/MSBReg/configs/Base-Regularized.yaml",
}


def _all_configs(d2: bool):
    paths = glob.glob(os.path.join(REPO_ROOT, "configs", "**", "*.yaml"), recursive=True)
    paths += glob.glob(os.path.join(REPO_ROOT, "projects", "*", "configs", "**", "*.yaml"), recursive=True)
    rel = sorted(os.path.relpath(p, REPO_ROOT) for p in paths)
    return [p for p in rel if p.startswith("projects/Detectron2Transfer/") == d2 and p not in PARTIAL_BASES]


@functools.lru_cache(maxsize=None)
def _without_missing_weights(config: str) -> list:
    """MODEL.WEIGHTS "" where the config names a checkpoint of an earlier run that is not here (a linear
    evaluation of `output/...`): validate() refuses a missing file, which is the run's input, not the recipe."""
    cfg = setup_cfg(SimpleNamespace(config_file=os.path.join(REPO_ROOT, config), opts=[]))
    weights = cfg.MODEL.WEIGHTS
    missing = weights and "://" not in weights and not os.path.exists(os.path.join(REPO_ROOT, weights))
    return ["MODEL.WEIGHTS", ""] if missing else []


def _summary(config: str):
    """(resolved cfg, summary) of `config` at 8 processes: model, optimizer, schedule, hooks built."""
    cfg = setup_cfg(SimpleNamespace(config_file=os.path.join(REPO_ROOT, config), opts=_without_missing_weights(config)))
    return summarize(cfg, world_size=8)


def _d2():
    pytest.importorskip("detectron2", reason="detectron2 not installed (make d2)")
    sys.path.insert(0, D2_PROJECT)
    try:
        import d2_transfer
    finally:
        sys.path.remove(D2_PROJECT)
    return d2_transfer


def _d2_cfg(config: str):
    from detectron2.config import get_cfg

    cfg = get_cfg()
    _d2().add_transfer_config(cfg)
    cfg.merge_from_file(os.path.join(REPO_ROOT, config))
    return cfg


def _table(path: str) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def _spellings(value) -> list:
    """Ways an official line may write `value`: 1e-06 as 1e-6 or 0.000001, 30.0 as 30., 0.9 as .9."""
    if isinstance(value, bool):
        return [str(value), str(value).lower()]
    if isinstance(value, (int, float)):
        x = float(value)
        out = {repr(value), f"{x:g}", repr(x)}
        if x.is_integer():
            out |= {str(int(x)), f"{int(x)}.", f"{int(x)}.0"}
        for digits in range(0, 4):  # scientific: 1e-6, 1.5e-6, 1e-06
            sci = f"{x:.{digits}e}"
            if float(sci) == x:
                out |= {sci, re.sub(r"e([+-])0*(\d)", r"e\1\2", sci)}
        out |= {o.replace("e+", "e") for o in out} | {o[1:] for o in out if o.startswith("0.")}
        return sorted(out)
    return [str(value)]


def _states(text: str, value) -> bool:
    """Whether the quoted line writes `value` (each element, for a list) as a whole token."""
    if isinstance(value, (list, tuple)):
        return all(_states(text, v) for v in value)
    before = r"(?<![\w.])" if isinstance(value, (int, float)) else r"(?<!\w)"  # 0.3 is not in 10.3
    return any(re.search(before + re.escape(s) + r"(?![\w]|\.\d)", text) for s in _spellings(value))


def citation_errors(table: dict) -> list:
    """What is missing or wrong in the citations of one recipe table (the checks of its row format)."""
    errors = []
    sources = table.get("sources") or {}
    for key, source in sources.items():
        if "repo" in source and not (re.fullmatch(r"[0-9a-f]{40}", str(source.get("commit", ""))) and source.get("path")):
            errors.append(f"source {key}: a repository source needs a 40-hex commit and a path")
        if "repo" not in source and "paper" not in source:
            errors.append(f"source {key}: neither a repository file nor a paper")
    for row in table["rows"]:
        cites = row.get("cite") or {}
        for key in sorted(set(row["expect"]) - set(cites)):
            errors.append(f"{row['name']}: {key} has no official line (cite)")
        for key in sorted(set(cites) - set(row["expect"])):
            errors.append(f"{row['name']}: cite of {key}, which the row does not expect")
        for key, cite in cites.items():
            where = f"{row['name']}: {key}"
            source = sources.get(cite.get("src"))
            if source is None:
                errors.append(f"{where}: unknown source {cite.get('src')!r}")
                continue
            if "repo" in source and not (isinstance(cite.get("line"), int) and cite["line"] > 0):
                errors.append(f"{where}: a repository source needs a line number")
            text = cite.get("text") or ""
            if not text.strip():
                errors.append(f"{where}: no quoted text")
            elif cite.get("differs") is not None:
                if not str(cite["differs"]).strip():
                    errors.append(f"{where}: 'differs' gives no reason")
            elif "means" in cite:
                if cite["means"] not in text:
                    errors.append(f"{where}: {cite['means']!r} is not in the quoted line {text!r}")
            elif key in row["expect"] and not _states(text, row["expect"][key]):
                errors.append(f"{where}: {row['expect'][key]!r} is not in the quoted line {text!r}")
    return errors


@pytest.mark.parametrize("path", TABLE_PATHS, ids=lambda p: os.path.relpath(p, REPO_ROOT))
def test_every_recipe_value_quotes_the_official_line_that_states_it(path):
    assert citation_errors(_table(path)) == []


def test_a_row_without_its_official_line_or_with_another_value_fails():
    table = _table(os.path.join(REPO_ROOT, "recipes.yaml"))
    uncited = copy.deepcopy(table)
    row = next(r for r in uncited["rows"] if r["name"] == "simclr_r50_200ep")
    del row["cite"]["SOLVER.WEIGHT_DECAY"]
    assert citation_errors(uncited) == ["simclr_r50_200ep: SOLVER.WEIGHT_DECAY has no official line (cite)"]
    drifted = copy.deepcopy(table)
    row = next(r for r in drifted["rows"] if r["name"] == "simclr_r50_200ep")
    row["expect"]["SOLVER.WEIGHT_DECAY"] = 0.0001  # run.py @ 383d414's value, not be133b38's quoted line
    assert citation_errors(drifted) == ["simclr_r50_200ep: SOLVER.WEIGHT_DECAY: 0.0001 is not in the quoted line \"'weight_decay', 1e-6,\""]


@pytest.mark.parametrize(
    "value,text,states",
    [
        (0.000001, "'weight_decay', 1e-6,", True),
        (0.0001, "default=1e-4,", True),
        (30.0, "default=30., type", True),
        (0.9, "momentum=.9,", True),
        (0.3, "default=0.03,", False),
        (3, "default=30", False),
        (0.99, "0.996", False),
        ([0.2, 1.0], "scale=(0.2, 1.0)),", True),
        ([60, 80], "default=[60, 80],", True),
        (True, "nesterov=True,", True),
        (256, "train_batch_size / 256.", True),
        (1.5e-6, "1000: 1.5e-6}", True),
    ],
)
def test_a_value_is_read_in_a_line_as_a_whole_token(value, text, states):
    assert _states(text, value) is states


def _official_lines(root: str, source: dict) -> list:
    return _file_at_commit(root, source["repo"], source["commit"], source["path"])


@functools.lru_cache(maxsize=None)
def _file_at_commit(root: str, repo: str, commit: str, path: str) -> list:
    name = repo.replace("/", "+")
    for git_dir in (os.path.join(root, name, "repo"), os.path.join(root, name)):
        if os.path.isdir(git_dir):
            show = subprocess.run(["git", "-C", git_dir, "show", f"{commit}:{path}"], capture_output=True, text=True)
            assert show.returncode == 0, show.stderr
            return show.stdout.splitlines()
    pytest.fail(f"no clone of {repo} under {root} (named {name})")


@pytest.mark.skipif(
    not os.environ.get("SSL_LAB_OFFICIAL_REPOS"), reason="set SSL_LAB_OFFICIAL_REPOS to a folder of clones named owner+name"
)
@pytest.mark.parametrize("path", TABLE_PATHS, ids=lambda p: os.path.relpath(p, REPO_ROOT))
def test_every_quoted_line_is_the_line_at_its_file_and_commit(path):
    root, table = os.environ["SSL_LAB_OFFICIAL_REPOS"], _table(path)
    papers = os.environ.get("SSL_LAB_PAPERS")
    wrong = []
    for row in table["rows"]:
        for key, cite in row.get("cite", {}).items():
            source = table["sources"][cite["src"]]
            if "repo" in source:
                found = _official_lines(root, source)[cite["line"] - 1].strip()
            elif papers:
                with open(os.path.join(papers, source["file"])) as f:
                    found = cite["text"] if " ".join(cite["text"].split()) in " ".join(f.read().split()) else None
            else:
                continue
            if found != cite["text"]:
                wrong.append(f"{row['name']}: {key}: {cite['src']} line {cite['line']} is {found!r}")
    assert wrong == []


@pytest.mark.parametrize("row", [r for r in ROWS if "Detectron2Transfer" not in r["config"]], ids=lambda r: r["name"])
def test_shipped_config_writes_the_value_of_its_official_line(row):
    # The config itself, read key by key, against the quoted official line: no value of our table between.
    cfg, _ = _summary(row["config"])
    for key, cite in row["cite"].items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        value = list(node) if isinstance(node, tuple) else node
        if "means" in cite or "differs" in cite:
            expected = row["expect"][key]
            assert value == expected or (isinstance(expected, float) and math.isclose(value, expected)), key
        else:
            assert _states(cite["text"], value), (key, value, cite["text"])


def test_recipe_tables_cover_the_paper_rows():
    names = {row["name"] for row in ROWS}
    for needed in [
        "mocov1_r50_200ep",
        "mocov2_r50_200ep",
        "simclr_r50_200ep",
        "byol_r50_200ep",
        "simo_r50_200ep_k16",
        "simo_r50_200ep_k256",
        "simo_r50_200ep_alpha65536",
        "simo_r50_800ep",
        "simo_r50w2x_200ep",
        "simo_r50_100ep_momentum0",
        "simo_r50_100ep_shufflebn",
        "simo_lincls",
        "mocov2_r50_200ep_k16_eqco",
        "mocov2_r50_200ep_n1024",
        "simclr_r50_200ep_k256_eqco",
        "d2_fpn_1x_simo",
        "linear_eval_moco",
        "linear_eval_simclr",
        "linear_eval_byol",
    ]:
        assert needed in names
    for row in ROWS:
        assert os.path.isfile(os.path.join(REPO_ROOT, row["config"])), row["config"]
        assert row["expect"] and row["cite"]


@pytest.mark.parametrize("row", [r for r in ROWS if "Detectron2Transfer" not in r["config"]], ids=lambda r: r["name"])
def test_shipped_config_equals_its_recipe_row(row):
    cfg, summary = _summary(row["config"])
    assert compare_with_recipe(row, cfg, summary) == []


@pytest.mark.parametrize("row", [r for r in ROWS if "Detectron2Transfer" in r["config"]], ids=lambda r: r["name"])
def test_detectron2_transfer_config_equals_its_recipe_row(row):
    assert compare_with_recipe(row, _d2_cfg(row["config"])) == []


def test_a_drifted_config_is_reported_key_by_key():
    row = next(r for r in ROWS if r["name"] == "simo_r50_200ep_k16")
    cfg = setup_cfg(
        SimpleNamespace(config_file=os.path.join(REPO_ROOT, row["config"]), opts=["SOLVER.BASE_LR", "0.06", "SOLVER.EPOCHS", "100"])
    )
    cfg, summary = summarize(cfg, world_size=8)
    diffs = {key: (here, official) for key, here, official in compare_with_recipe(row, cfg, summary)}
    assert diffs == {"SOLVER.BASE_LR": (0.06, 0.03), "SOLVER.EPOCHS": (100, 200), "lr": (0.06, 0.03), "max_iter": (500400, 1000800)}


@pytest.mark.parametrize("config", _all_configs(d2=False))
def test_every_config_builds_model_optimizer_schedule_and_hooks(config):
    cfg, summary = _summary(config)
    assert summary["max_iter"] > 0 and summary["params"] > 0
    assert summary["per_rank_batch"] * 8 == cfg.SOLVER.IMS_PER_BATCH
    assert "LRScheduler" in summary["hooks"]


@pytest.mark.parametrize("config", _all_configs(d2=False))
def test_every_config_passes_the_job_check_of_train_net(config, tmp_path):
    # What train_net.py runs before any process starts; registered builder functions (MSBReg's
    # "Regularized") as well as classes.
    validate(
        setup_cfg(
            SimpleNamespace(
                config_file=os.path.join(REPO_ROOT, config), opts=["OUTPUT_DIR", str(tmp_path / "out"), *_without_missing_weights(config)]
            )
        ),
        8,
    )


@pytest.mark.parametrize("config", _all_configs(d2=True))
def test_every_detectron2_config_builds_model_optimizer_and_schedule(config):
    d2 = _d2()
    cfg = _d2_cfg(config)
    cfg.MODEL.DEVICE = "meta"
    with torch.device("meta"):
        model = d2.Trainer.build_model(cfg)
    optimizer = d2.Trainer.build_optimizer(cfg, model)
    d2.Trainer.build_lr_scheduler(cfg, optimizer)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_resnet50_is_built_at_its_real_size():
    # torchvision's ResNet-50 has 25,557,032 parameters, 2,049,000 of them in the fc layer.
    _, summary = _summary("configs/ImageNet/mocov2_r50_200ep.yaml")
    assert summary["backbone_params"] == 25_557_032 - 2_049_000


def _train_net(*argv):
    return subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "tools", "train_net.py"), *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )


def test_dry_run_prints_the_resolved_run_and_its_recipe_row(tmp_path):
    out = tmp_path / "out"
    proc = _train_net("--config-file", "projects/SiMo/configs/r50_200ep_k256.yaml", "--num-gpus", "8", "--dry-run", "OUTPUT_DIR", str(out))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for line in [
        "256 global, 32 per rank",
        "lr: 0.03 ",
        "5004 iterations per epoch, 1000800 in total, warmup 50040",
        "negatives per query K: 255, alpha: 256",
        "recipe row 'simo_r50_200ep_k256'",
        "matches",
    ]:
        assert line in text, line
    assert not out.exists()  # nothing written
    drifted = _train_net(
        "--config-file", "projects/SiMo/configs/r50_200ep_k256.yaml", "--num-gpus", "8", "--dry-run", "SOLVER.BASE_LR", "0.3"
    )
    assert drifted.returncode == 0 and "differs in SOLVER.BASE_LR = 0.3 (official 0.03)" in drifted.stdout


def test_dry_run_of_a_broken_config_fails_with_the_real_runs_message(tmp_path):
    # SimCLR with K = 64 at a global batch of 16 (30 candidates): the EqCo hook refuses it at build time.
    opts = [*tiny_overrides(str(tmp_path / "data"), str(tmp_path / "run")), "SOLVER.IMS_PER_BATCH", "16"]
    config = ["--config-file", "projects/EqCo/configs/Shapes/simclr_r18_k64.yaml"]
    dry = _train_net(*config, "--dry-run", *opts)
    real = _train_net(*config, *opts)
    assert dry.returncode == real.returncode == 2
    message = [line for line in dry.stderr.splitlines() if line.startswith("ERROR")]
    assert len(message) == 1 and "largest valid value is 30" in message[0]
    assert message[0] in real.stderr.splitlines()


def test_byol_heads_are_the_official_mlp():
    # deepmind-research byol/utils/networks.py MLP: Linear(bias) -> BN -> ReLU -> Linear(no bias).
    from ssl_lab.modeling import build_model

    cfg = setup_cfg(
        SimpleNamespace(config_file=os.path.join(REPO_ROOT, "configs/ImageNet/byol_r50_200ep.yaml"), opts=["MODEL.DEVICE", "meta"])
    )
    with torch.device("meta"):
        model = build_model(cfg)
    for head, in_dim in [(model.projector, 2048), (model.predictor, 256)]:
        first, bn, relu, last = head
        assert (first.in_features, first.out_features, last.out_features) == (in_dim, 4096, 256)
        assert first.bias is not None and last.bias is None
        assert isinstance(bn, torch.nn.modules.batchnorm._BatchNorm) and isinstance(relu, torch.nn.ReLU)


@pytest.mark.parametrize(
    "config,opts,message",
    [
        (
            "configs/Shapes/simclr_r18.yaml",
            ["SOLVER.IMS_PER_BATCH", "16"],
            "NUM_NEGATIVES = 64 is more than the 30 candidates of SimCLR's 2N - 2 in-batch embeddings "
            "(N = SOLVER.IMS_PER_BATCH / SOLVER.GRAD_ACCUM_STEPS = 16 / 1); the largest valid value is 30",
        ),
        (
            "configs/Shapes/mocov2_r18.yaml",
            ["MODEL.QUEUE.SIZE", "32"],
            "NUM_NEGATIVES = 64 is more than the 32 candidates of the queue (MODEL.QUEUE.SIZE = 32); the largest valid value is 32",
        ),
    ],
)
def test_a_k_above_the_candidates_is_refused_at_build_time(config, opts, message):
    from ssl_lab.modeling import build_model

    sampled = ["MODEL.NEGATIVE_SAMPLER.NAME", "RandomNegatives", "MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES", "64"]
    cfg = setup_cfg(SimpleNamespace(config_file=os.path.join(REPO_ROOT, config), opts=[*opts, *sampled]))
    with pytest.raises(ValueError) as err:
        build_model(cfg)
    assert message in str(err.value)


def _built(config: str, *opts):
    from ssl_lab.modeling import build_model

    cfg = setup_cfg(SimpleNamespace(config_file=os.path.join(REPO_ROOT, config), opts=["MODEL.DEVICE", "cpu", *opts]))
    torch.manual_seed(0)
    return cfg, build_model(cfg)


def test_simclr_head_ends_in_a_bn_with_scale_and_no_shift():
    # google-research/simclr model_util.py: the last linear_layer has use_bias=False -> BN(center=False).
    # Hand check in float64: the head's output is (z - mean) / sqrt(var + eps) * gamma, per feature, with no
    # beta; after an SGD step on a loss that pulls every output up, each feature's batch mean stays 0.
    cfg, model = _built(
        "configs/ImageNet/simclr_r50_200ep.yaml",
        "MODEL.BACKBONE.DEPTH",
        "18",
        "MODEL.PROJECTOR.HIDDEN_DIM",
        "16",
        "MODEL.PROJECTOR.OUT_DIM",
        "8",
        "MODEL.BACKBONE.NORM",
        "BN",
        "MODEL.PROJECTOR.NORM",
        "BN",
    )
    head = model.projector.double()
    hidden_bn, last_bn = [m for m in head if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert hidden_bn.bias is not None and last_bn.bias is None and last_bn.weight is not None
    with torch.no_grad():
        for bn in (hidden_bn, last_bn):
            bn.weight.uniform_(0.5, 2.0)
        hidden_bn.bias.uniform_(-1.0, 1.0)
    x = torch.randn(32, 512, dtype=torch.float64)
    first, last = [m for m in head if isinstance(m, torch.nn.Linear)]
    h = x @ first.weight.T
    h = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + hidden_bn.eps) * hidden_bn.weight + hidden_bn.bias
    z = torch.relu(h) @ last.weight.T
    expected = (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + last_bn.eps) * last_bn.weight
    torch.testing.assert_close(head(x), expected.detach())
    optimizer = torch.optim.SGD(head.parameters(), lr=1.0)
    head(x).sum().neg().backward()
    optimizer.step()
    torch.testing.assert_close(head(x).mean(0), torch.zeros(8, dtype=torch.float64), atol=1e-9, rtol=0)


def test_other_heads_keep_the_shift_of_their_last_bn():
    _, model = _built("projects/SiMo/configs/shapes_r18.yaml")  # SelfSup's SiMo head: torch BN, affine
    last_bn = [m for m in model.projector if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)][-1]
    assert last_bn.bias is not None


@pytest.mark.parametrize(
    "config",
    [
        "configs/ImageNet/simclr_r50_200ep.yaml",
        "configs/ImageNet/byol_r50_200ep.yaml",
        "projects/MSBReg/configs/ImageNet/msbreg_r50_k4_200ep.yaml",
    ],
)
def test_official_resnet50s_start_each_bottleneck_as_its_shortcut(config):
    # init_zero=True (SimCLR) / batchnorm_2 scale_init=zeros (haiku BlockV1): at initialization every
    # bottleneck outputs relu(shortcut(x)), its residual branch contributing exactly zero.
    _, model = _built(config)
    from torchvision.models.resnet import Bottleneck

    blocks = [m for m in model.backbone.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16
    model.backbone.eval()
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        for block in blocks[:4]:  # layer1 and the first block of layer2 (a projection shortcut)
            shortcut = block.downsample(x) if block.downsample is not None else x
            torch.testing.assert_close(block(x), torch.relu(shortcut))
            x = block(x)


def test_byol_r18_ablation_has_no_zero_init_like_haikus_basic_blocks():
    _, model = _built("projects/MSBReg/configs/ImageNet/ablation/Base-R18-Ablation.yaml")
    from torchvision.models.resnet import BasicBlock

    assert all(bool((b.bn2.weight == 1).all()) for b in model.backbone.modules() if isinstance(b, BasicBlock))


@pytest.mark.parametrize("config", ["configs/ImageNet/simclr_r50_200ep.yaml", "configs/ImageNet/byol_r50_200ep.yaml"])
def test_simclr_and_byol_cosine_starts_after_warmup_as_the_official_schedule(config):
    # simclr model_util.py / byol utils/schedules.py: lr = peak * s / W during warmup, then
    # peak * 0.5 * (1 + cos(pi * (s - W) / (T - W))), worked out here in float64.
    from ssl_lab.solver import resolve_schedule

    cfg = resolve_schedule(setup_cfg(SimpleNamespace(config_file=os.path.join(REPO_ROOT, config), opts=[])), 1281167)
    peak, total, warmup = 4.8, 62400, 3120
    assert (cfg.SOLVER.MAX_ITER, cfg.SOLVER.WARMUP_ITERS) == (total, warmup)
    lrs = lr_trajectory(cfg, total)
    for s in [1560, 3120, 3121, 23143, 40000, 62399]:
        official = peak * s / warmup if s < warmup else peak * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup)))
        assert math.isclose(lrs[s], official, rel_tol=2e-3, abs_tol=1e-6), (s, lrs[s], official)
