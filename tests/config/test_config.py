import glob
import os
from types import SimpleNamespace

import pytest

from ssl_lab.config import ConfigError, get_cfg
from ssl_lab.engine import setup_cfg
from ssl_lab.modeling.meta_arch.build import META_ARCH_REGISTRY

from conftest import REPO_ROOT


def test_unknown_key_names_key_and_closest_valid_keys():
    cfg = get_cfg()
    with pytest.raises(ConfigError) as err:
        cfg.merge_from_list(["SOLVER.BASE_LRR", "0.1"])
    assert "SOLVER.BASE_LRR" in str(err.value)
    assert "SOLVER.BASE_LR" in str(err.value).split("Did you mean:")[1]


def test_unknown_key_in_file_is_reported(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("MODEL:\n  BACKBONE:\n    DEPHT: 18\n")
    with pytest.raises(ConfigError, match="MODEL.BACKBONE.DEPHT.*MODEL.BACKBONE.DEPTH"):
        get_cfg().merge_from_file(str(path))


def _full_keys(node, prefix=""):
    for key, value in node.items():
        yield from _full_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]


def test_a_renamed_key_is_refused_naming_its_new_name_which_the_tree_has(tmp_path):
    cfg = get_cfg()
    renamed = cfg.__dict__[cfg.RENAMED_KEYS]
    assert renamed["INPUT.GPU_AUGMENTATION"] == "INPUT.BATCHED_AUGMENTATION"
    keys = set(_full_keys(cfg))
    for old, new in renamed.items():
        assert new in keys and old not in keys and cfg.renamed_to(old) == new
        with pytest.raises(ConfigError, match=f"^Config key '{old}' was renamed to '{new}'; use the new name"):
            cfg.merge_from_list([old, "1"])
    path = tmp_path / "old.yaml"
    path.write_text("INPUT:\n  GPU_AUGMENTATION_SIZE: 48\n")
    with pytest.raises(ConfigError, match="^Config key 'INPUT.GPU_AUGMENTATION_SIZE' was renamed to 'INPUT.BATCHED_AUGMENTATION_SIZE'"):
        get_cfg().merge_from_file(str(path))
    assert cfg.renamed_to("SOLVER.BASE_LR") == "SOLVER.BASE_LR"


def test_missing_file_and_bad_values():
    with pytest.raises(ConfigError, match="does not exist"):
        get_cfg().merge_from_file("/nonexistent/cfg.yaml")
    with pytest.raises(ConfigError, match="SOLVER.BASE_LR"):
        get_cfg().merge_from_list(["SOLVER.BASE_LR", "fast"])
    with pytest.raises(ConfigError, match="KEY VALUE pairs"):
        get_cfg().merge_from_list(["SOLVER.BASE_LR"])


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("SOLVER:\n  BASE_LR: 0.5\n  IMS_PER_BATCH: 64\n")
    (tmp_path / "child.yaml").write_text('_BASE_: "base.yaml"\nSOLVER:\n  IMS_PER_BATCH: 32\n')
    cfg = get_cfg()
    cfg.merge_from_file(str(tmp_path / "child.yaml"))
    cfg.merge_from_list(["SOLVER.MAX_ITER", "7"])
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.MAX_ITER) == (0.5, 32, 7)


@pytest.mark.parametrize(
    "path",
    sorted(glob.glob(os.path.join(REPO_ROOT, "configs", "**", "*.yaml"), recursive=True)),
    ids=lambda p: os.path.relpath(p, REPO_ROOT),
)
def test_every_shipped_config_loads(path):
    """Merged as train_net merges it (a config that IMPORTS a project gets the project's keys), it
    names a registered method."""
    cfg = setup_cfg(SimpleNamespace(config_file=path, opts=[]))
    assert cfg.MODEL.META_ARCHITECTURE in META_ARCH_REGISTRY


def test_imagenet_configs_carry_the_papers_hyperparameters():
    def load(name):
        cfg = get_cfg()
        cfg.merge_from_file(os.path.join(REPO_ROOT, "configs", "ImageNet", name))
        return cfg

    mocov2 = load("mocov2_r50_200ep.yaml")
    assert (mocov2.SOLVER.BASE_LR, mocov2.SOLVER.IMS_PER_BATCH, mocov2.SOLVER.EPOCHS) == (0.03, 256, 200)
    assert (mocov2.MODEL.LOSS.TEMPERATURE, mocov2.MODEL.QUEUE.SIZE, mocov2.INPUT.AUGMENTATION) == (0.2, 65536, "MoCoV2")
    mocov1 = load("mocov1_r50_200ep.yaml")
    assert mocov1.MODEL.LOSS.TEMPERATURE == 0.07 and tuple(mocov1.SOLVER.STEP_EPOCHS) == (120, 160)
    assert load("byol_r50_200ep.yaml").MODEL.MOMENTUM.BASE == 0.99  # byol/configs/byol.py: <= 300 epochs
    assert load("simclr_r50_200ep.yaml").SOLVER.OPTIMIZER == "LARS"


def test_imports_load_a_project_package_and_its_config_keys(tmp_path):
    from argparse import Namespace

    from ssl_lab.engine import setup_cfg
    from ssl_lab.modeling import LOSS_REGISTRY

    package = tmp_path / "myproj"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from ssl_lab.config import CfgNode\n"
        "from ssl_lab.modeling import LOSS_REGISTRY\n"
        "import torch\n"
        "@LOSS_REGISTRY.register()\n"
        "class MyProjLoss(torch.nn.Module):\n"
        "    pass\n"
        "def add_config(cfg):\n"
        "    cfg.MYPROJ = CfgNode({'ALPHA': 1.0})\n"
    )
    (tmp_path / "cfg.yaml").write_text(f"IMPORTS: ['{package}']\nMYPROJ:\n  ALPHA: 2.5\n")
    cfg = setup_cfg(Namespace(config_file=str(tmp_path / "cfg.yaml"), opts=[]))
    assert cfg.MYPROJ.ALPHA == 2.5 and "MyProjLoss" in LOSS_REGISTRY
    (tmp_path / "tuple.yaml").write_text(f'IMPORTS: ("{package}",)\n')  # the Python-literal form
    assert setup_cfg(Namespace(config_file=str(tmp_path / "tuple.yaml"), opts=[])).MYPROJ.ALPHA == 1.0
    with pytest.raises(ConfigError, match="'does/not/exist' is neither a Python package folder .* nor an importable"):
        setup_cfg(Namespace(config_file="", opts=["IMPORTS", "('does/not/exist',)"]))


def test_imports_accepts_module_names(tmp_path, monkeypatch):
    """An IMPORTS entry may name an importable module (an installed project) instead of a folder."""
    from argparse import Namespace

    from ssl_lab.engine import setup_cfg

    package = tmp_path / "site" / "named_proj"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "keys.py").write_text("from ssl_lab.config import CfgNode\ndef add_config(cfg):\n    cfg.NAMED = CfgNode({'BETA': 3})\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    (tmp_path / "cfg.yaml").write_text("IMPORTS: ['named_proj.keys']\nNAMED:\n  BETA: 4\n")
    assert setup_cfg(Namespace(config_file=str(tmp_path / "cfg.yaml"), opts=[])).NAMED.BETA == 4
    with pytest.raises(ConfigError, match="'named_proj.absent' is neither"):
        setup_cfg(Namespace(config_file="", opts=["IMPORTS", "('named_proj.absent',)"]))
