"""Project packages named by a config's IMPORTS key, loaded before the config is merged.

`IMPORTS: ("projects/SiMo/simo",)` adds `projects/SiMo` to sys.path and imports the
package `simo`, which registers its components; its `add_config(cfg)`, if any, adds
the project's config keys. Paths are relative to the current directory or, failing
that, to the ssl_lab checkout.
"""
import importlib
import os
import sys

from .config import CfgNode, ConfigError

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _resolve(path: str) -> str:
    for candidate in (os.path.abspath(path), os.path.join(_REPO_ROOT, path)):
        if os.path.isfile(os.path.join(candidate, "__init__.py")):
            return candidate
    raise ConfigError(f"IMPORTS entry '{path}' is not a Python package folder (relative to '{os.getcwd()}' "
                      f"or '{_REPO_ROOT}')")


def import_project(path: str):
    """Import the package folder `path`; return the module."""
    folder = _resolve(path)
    parent, name = os.path.split(folder)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    module = importlib.import_module(name)
    if os.path.dirname(os.path.abspath(module.__file__)) != folder:
        raise ConfigError(f"IMPORTS entry '{path}': another module named '{name}' is already imported "
                          f"from {module.__file__}")
    return module


def _as_list(value) -> list:
    """A YAML list, a Python-literal tuple/list string ("('a', 'b')") or one path -> list of paths."""
    if isinstance(value, str):
        value = CfgNode._decode_cfg_value(value)
    return [value] if isinstance(value, str) else list(value)


def imports_of(config_file: str, opts) -> list:
    """IMPORTS named in `config_file` (with its _BASE_ chain) and in the KEY VALUE `opts`."""
    imports = []
    if config_file and os.path.isfile(config_file):
        imports += _as_list(CfgNode.load_yaml_with_base(config_file).get("IMPORTS", []))
    for key, value in zip(opts[0::2], opts[1::2]):
        if key == "IMPORTS":
            imports += _as_list(value)
    return imports


def config_functions(config_file: str, opts):
    """Import every project of IMPORTS; return their `add_config` functions."""
    modules = [import_project(path) for path in imports_of(config_file, opts)]
    return [m.add_config for m in modules if hasattr(m, "add_config")]
