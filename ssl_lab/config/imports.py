"""Project packages named by a config's IMPORTS key, loaded before the config is merged.

An entry is a package folder or a module name. `IMPORTS: ("projects/SiMo/simo",)` adds
`projects/SiMo` to sys.path and imports the package `simo`, which registers its components;
its `add_config(cfg)`, if any, adds the project's config keys. Folders are relative to the
current directory or, failing that, to the ssl_lab checkout. A folder that is in neither (ssl_lab
installed from a wheel, which installs the project packages) and a plain module name
(`IMPORTS: ("my_project.methods",)`) are imported as modules: the folder by its last component.
"""

import importlib
import os
import sys
import traceback
from typing import Optional

from ssl_lab.utils.errors import debug_enabled
from ssl_lab.utils.resources import resources_root

from .config import CfgNode, ConfigError, resolve_config_file


def _find_folder(entry: str) -> Optional[str]:
    for candidate in (os.path.abspath(entry), os.path.join(resources_root(), entry)):
        if os.path.isfile(os.path.join(candidate, "__init__.py")):
            return candidate
    return None


def _broken(entry: str, err: Exception) -> ConfigError:
    """The error of a project whose code fails while it is imported, naming the line that raised."""
    if isinstance(err, SyntaxError):
        where = f"{err.filename}:{err.lineno}"
    else:
        frame = traceback.extract_tb(err.__traceback__)[-1]
        where = f"{frame.filename}:{frame.lineno}"
    return ConfigError(
        f"IMPORTS entry '{entry}' cannot be imported: {type(err).__name__}: {err} (at {where}); "
        f"fix that code or remove the entry (--debug shows the traceback)"
    )


def _import(entry: str, name: str):
    """importlib.import_module(name); a failure of the project's own code is a ConfigError."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is not None and (name == err.name or name.startswith(err.name + ".")):
            raise ConfigError(
                f"IMPORTS entry '{entry}' is neither a Python package folder (relative to "
                f"'{os.getcwd()}' or '{resources_root()}') nor an importable module"
            ) from None
        if debug_enabled():
            raise
        raise _broken(entry, err) from None  # the module exists but imports something missing
    except Exception as err:
        if debug_enabled():
            raise
        raise _broken(entry, err) from None


def import_project(entry: str):
    """Import the package folder or module `entry`; return the module."""
    folder = _find_folder(entry)
    if folder is None:
        return _import(entry, entry.rstrip("/").split("/")[-1])
    parent, name = os.path.split(folder)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    module = _import(entry, name)
    if os.path.dirname(os.path.abspath(module.__file__)) != folder:
        raise ConfigError(f"IMPORTS entry '{entry}': another module named '{name}' is already imported from {module.__file__}")
    return module


def _as_list(value) -> list:
    """A YAML list, a Python-literal tuple/list string ("('a', 'b')") or one path -> list of paths."""
    if isinstance(value, str):
        value = CfgNode._decode_cfg_value(value)
    return [value] if isinstance(value, str) else list(value)


def imports_of(config_file: str, opts) -> list:
    """IMPORTS named in `config_file` (with its _BASE_ chain) and in the KEY VALUE `opts`."""
    imports = []
    config_file = resolve_config_file(config_file)
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
