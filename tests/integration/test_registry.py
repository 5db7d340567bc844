"""The one registry contract: every Registry is listed in ssl_lab.registry, and every entry of the
package and its projects is called as `entry(cfg, *extra)` with the arguments listed there."""

import gc
import glob
import importlib
import inspect
import os
import pkgutil
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

import ssl_lab
from ssl_lab.config import CfgNode, configurable, get_cfg, import_project
from ssl_lab.data.datasets.build import DatasetNotFoundError
from ssl_lab.engine import HookBase, setup_cfg
from ssl_lab.evaluation import DatasetEvaluator
from ssl_lab.registry import REGISTRIES
from ssl_lab.utils.registry import Registry

from conftest import REPO_ROOT, tiny_overrides

PROJECTS = [
    os.path.join(REPO_ROOT, path)
    for path in ("projects/EqCo/eqco", "projects/SiMo/simo", "projects/MSBReg/msbreg", "projects/example_project/example_project")
]
PROJECT_MODULES = [import_project(path) for path in PROJECTS]
OWN_PACKAGES = ("ssl_lab",) + tuple(module.__name__ for module in PROJECT_MODULES)
BY_KIND = {info.kind: info for info in REGISTRIES}


def _own_entries():
    """(kind, name) of every entry registered by ssl_lab or its projects (not by other test files)."""
    return [(info.kind, name) for info in REGISTRIES for name, entry in info.registry if entry.__module__.split(".")[0] in OWN_PACKAGES]


def test_every_registry_is_listed():
    for module in pkgutil.walk_packages(ssl_lab.__path__, "ssl_lab."):
        importlib.import_module(module.name)
    found = {id(obj): obj._name for obj in gc.get_objects() if isinstance(obj, Registry)}
    listed = {id(info.registry): info.registry._name for info in REGISTRIES}
    assert found == listed
    assert len(listed) == len(REGISTRIES) == 10


def _call_signature(entry) -> inspect.Signature:
    """What `entry(...)` accepts: a @configurable class's `from_config`, else the callable itself."""
    if inspect.isclass(entry) and inspect.ismethod(getattr(entry, "from_config", None)):
        return inspect.signature(entry.from_config)
    return inspect.signature(entry)


@pytest.mark.parametrize("kind,name", _own_entries())
def test_entry_signature_is_the_listed_one(kind, name):
    info = BY_KIND[kind]
    parameters = list(_call_signature(info.registry.get(name)).parameters)
    assert parameters == ["cfg", *info.extra], f"{kind} '{name}' takes {parameters}, the contract {info.signature}"


@pytest.fixture(scope="module")
def cfg(shapes_root, tmp_path_factory):
    """The defaults with every project's keys, at the sizes of the tiny test runs."""
    cfg = get_cfg()
    for module in PROJECT_MODULES:
        if hasattr(module, "add_config"):
            module.add_config(cfg)
    cfg.merge_from_list(
        tiny_overrides(shapes_root, str(tmp_path_factory.mktemp("out")))
        + [
            "MODEL.DEVICE",
            "cpu",
            "MODEL.BACKBONE.DEPTH",
            "18",
            "MODEL.BACKBONE.BASE_CHANNELS",
            "8",
            "MODEL.BACKBONE.TIMM.MODEL",
            "vit_tiny_patch16_224",
            "MODEL.BACKBONE.TIMM.KWARGS",
            "('img_size', 16, 'patch_size', 4, 'depth', 2)",
            "DATASETS.TRAIN",
            "('shapes_train',)",
            "DATASETS.TEST",
            "('shapes_val',)",
            "INPUT.CROP_SIZE",
            "16",
            "TEST.KNN.K",
            "4",
            "MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES",
            "16",
        ]
    )
    return cfg


def _shapes_config_naming(name: str) -> str:
    """The first Shapes config of the repository whose MODEL.META_ARCHITECTURE is `name`."""
    files = sorted(
        glob.glob(os.path.join(REPO_ROOT, "configs/Shapes/*.yaml")) + glob.glob(os.path.join(REPO_ROOT, "projects/*/configs/*hapes*.yaml"))
    )
    for path in files:
        if CfgNode.load_yaml_with_base(path).get("MODEL", {}).get("META_ARCHITECTURE") == name:
            return path
    raise AssertionError(f"no Shapes config names the meta-architecture '{name}'")


def _call(kind: str, name: str, cfg):
    """Call the entry as its registry's build_* does, on `cfg` with the entry's name set at its key."""
    entry = BY_KIND[kind].registry.get(name)
    cfg = cfg.clone()
    if kind == "head":
        cfg.MODEL.PROJECTOR.NAME = name
        return entry(cfg.MODEL.PROJECTOR, 8)
    if kind == "queue":
        return entry(cfg, 8)
    if kind == "dataset":
        return entry(cfg, "train", None)
    if kind == "meta-architecture":
        path = _shapes_config_naming(name)
        opts = tiny_overrides(cfg.DATASETS.ROOT, cfg.OUTPUT_DIR) + ["MODEL.BACKBONE.BASE_CHANNELS", "8"]
        cfg = setup_cfg(SimpleNamespace(config_file=path, opts=opts))
    return entry(cfg)


@pytest.mark.parametrize("kind,name", _own_entries())
def test_entry_builds_from_a_tiny_config(kind, name, cfg):
    """Each entry, called with the listed arguments, returns what its registry promises."""
    if kind == "dataset" and name != "shapes":  # its files are not in the test's datasets root
        with pytest.raises(DatasetNotFoundError):
            _call(kind, name, cfg)
        return
    built = _call(kind, name, cfg)
    if kind == "backbone":
        assert built(torch.zeros(2, 3, 16, 16)).shape == (2, built.out_dim)
    elif kind == "head":
        assert built.out_dim == cfg.MODEL.PROJECTOR.OUT_DIM
        assert built(torch.randn(4, 8)).shape == (4, built.out_dim)
    elif kind == "loss":
        assert isinstance(built, torch.nn.Module) and isinstance(built.INPUTS, str)
    elif kind == "queue":
        assert built.negatives().shape == (cfg.MODEL.QUEUE.SIZE, 8)
    elif kind == "negative sampler":
        k = built.negatives_per_query(32, "a test")
        assert built(torch.randn(4, 32)).shape == (4, k)
    elif kind == "meta-architecture":
        assert isinstance(built, torch.nn.Module) and isinstance(built.backbone, torch.nn.Module)
    elif kind == "hook":
        assert isinstance(built, HookBase)
    elif kind == "evaluator":
        assert isinstance(built, DatasetEvaluator)
    elif kind == "dataset":
        assert len(built) == cfg.DATASETS.SHAPES.NUM_TRAIN
    elif kind == "augmentation recipe":
        image = Image.new("RGB", (24, 24), (200, 30, 90))
        assert all(view(image).shape == (3, 16, 16) for view in built)


class _Head:
    """A @configurable class whose from_config takes an extra argument, as a head's `in_dim`."""

    @configurable
    def __init__(self, in_dim: int, out_dim: int, bias: bool = True):
        self.args = (in_dim, out_dim, bias)

    @classmethod
    def from_config(cls, cfg, in_dim: int):
        return {"in_dim": in_dim, "out_dim": cfg.OUT_DIM}


def test_configurable_passes_extra_arguments_to_from_config_and_the_rest_to_init():
    node = CfgNode({"OUT_DIM": 7})
    assert _Head(node, 3).args == (3, 7, True)
    assert _Head(node, in_dim=3).args == (3, 7, True)
    assert _Head(cfg=node, in_dim=3).args == (3, 7, True)
    assert _Head(node, 3, out_dim=9, bias=False).args == (3, 9, False)  # not from_config's: to __init__
    assert _Head(1, 2).args == (1, 2, True)  # no config: the plain constructor
    with pytest.raises(TypeError, match="in_dim"):
        _Head(node)  # from_config's extra argument is missing
