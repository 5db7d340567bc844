"""CfgNode with `_BASE_` inheritance (from fvcore) and helpful errors for bad keys and files."""

import difflib
import os
from typing import List

import yaml
from fvcore.common.config import BASE_KEY
from fvcore.common.config import CfgNode as _FvcoreCfgNode

from ssl_lab.utils.errors import UserError
from ssl_lab.utils.resources import resource_path


class ConfigError(UserError, ValueError):
    """A config file or override that cannot be applied; the message says what would be right."""


def invalid_yaml_message(subject: str, err: yaml.YAMLError) -> str:
    """ "<subject> is not valid YAML at line L, column C: <problem>", one line for a YAML parse error."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{subject} is not valid YAML{where}: {problem}"


def resolve_config_file(path: str) -> str:
    """`path` if it exists, else the shipped config of that relative path (e.g. "configs/Shapes/byol_r18.yaml"
    from any directory, with ssl_lab installed)."""
    if path and not os.path.isfile(path) and not os.path.isabs(path) and os.path.isfile(resource_path(path)):
        return resource_path(path)
    return path


def _all_keys(node, prefix=""):
    for key, value in node.items():
        full = prefix + key
        if isinstance(value, _FvcoreCfgNode):
            yield from _all_keys(value, full + ".")
        else:
            yield full


class CfgNode(_FvcoreCfgNode):
    """The config node of ssl_lab.

    Differences to fvcore's node: an unknown key raises :class:`ConfigError` naming
    the key and the closest valid keys; a key registered with ``register_renamed_key``
    raises one naming its new name; a missing file raises one naming the path.
    """

    def raise_key_rename_error(self, full_key):
        new_key = self.renamed_to(full_key)
        raise ConfigError(f"Config key '{full_key}' was renamed to '{new_key}'; use the new name in the config file or override.")

    def renamed_to(self, full_key: str) -> str:
        """The name of `full_key` in this tree: its new name if it is registered as renamed, else itself."""
        new_key = self.__dict__[self.RENAMED_KEYS].get(full_key, full_key)
        return new_key[0] if isinstance(new_key, tuple) else new_key

    def _reraise_unknown_key(self, err):
        message = str(err.args[0]) if err.args else str(err)
        if "Non-existent" not in message:
            return
        key = message.split(":", 1)[1].strip()
        valid = list(_all_keys(self))
        close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
        if not close:  # fall back to keys sharing the last component
            last = key.split(".")[-1]
            close = [k for k in valid if k.split(".")[-1] == last][:3]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(f"Unknown config key '{key}'.{hint}") from None

    _loading: List[str] = []  # absolute paths of the files being read, outermost first (to find _BASE_ cycles)

    @classmethod
    def load_yaml_with_base(cls, filename, allow_unsafe=False):
        """fvcore's reader, refusing missing files, non-YAML, non-mappings and _BASE_ cycles by name."""
        path = os.path.abspath(filename)
        if os.path.isdir(filename):
            raise ConfigError(f"Config file '{filename}' is a directory; pass a .yaml file (e.g. {filename}/<name>.yaml)")
        if not os.path.isfile(filename):
            raise ConfigError(f"Config file '{filename}' does not exist.")
        if path in cls._loading:
            chain = " -> ".join(cls._loading[cls._loading.index(path) :] + [path])
            raise ConfigError(f"Config files inherit from each other in a cycle through _BASE_: {chain}")
        try:
            with open(filename) as f:
                content = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ConfigError(invalid_yaml_message(f"Config file '{filename}'", err)) from None
        except UnicodeDecodeError:
            raise ConfigError(f"Config file '{filename}' is not a text (YAML) file") from None
        if not isinstance(content, dict):
            what = "empty" if content is None else f"a YAML {type(content).__name__}"
            raise ConfigError(f"Config file '{filename}' is {what}; it must be a mapping of config keys, e.g. 'SOLVER:\\n  BASE_LR: 0.03'")
        if not isinstance(content.get(BASE_KEY, ""), str) and not isinstance(content.get(BASE_KEY), list):
            raise ConfigError(f"Config file '{filename}': {BASE_KEY} must be a file path or a list of paths")
        cls._loading.append(path)
        try:
            return super().load_yaml_with_base(filename, allow_unsafe=allow_unsafe)
        finally:
            cls._loading.pop()

    def merge_from_file(self, cfg_filename, allow_unsafe=False):
        cfg_filename = resolve_config_file(cfg_filename)
        try:
            return super().merge_from_file(cfg_filename, allow_unsafe=allow_unsafe)
        except ConfigError:
            raise
        except (KeyError, ValueError, AssertionError) as err:
            self._reraise_unknown_key(err)
            raise ConfigError(f"In config file '{cfg_filename}': {err}") from None

    def merge_from_list(self, cfg_list):
        if len(cfg_list) % 2 != 0:
            raise ConfigError(f"Config overrides must be KEY VALUE pairs; got an odd number of items: {cfg_list}")
        try:
            return super().merge_from_list(cfg_list)
        except ConfigError:
            raise
        except (KeyError, ValueError, AssertionError) as err:
            self._reraise_unknown_key(err)
            raise ConfigError(f"Bad config override: {err}") from None
