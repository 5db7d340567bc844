"""CfgNode with `_BASE_` inheritance (from fvcore) and helpful errors for bad keys and files."""
import difflib
import os

from fvcore.common.config import CfgNode as _FvcoreCfgNode

from ssl_lab.utils.resources import resource_path


class ConfigError(ValueError):
    """A config file or override that cannot be applied; the message says what would be right."""


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
    the key and the closest valid keys; a missing file raises one naming the path.
    """

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

    def merge_from_file(self, cfg_filename, allow_unsafe=False):
        cfg_filename = resolve_config_file(cfg_filename)
        if not os.path.isfile(cfg_filename):
            raise ConfigError(f"Config file '{cfg_filename}' does not exist.")
        try:
            return super().merge_from_file(cfg_filename, allow_unsafe=allow_unsafe)
        except ConfigError:
            raise
        except (KeyError, ValueError, AssertionError) as err:
            self._reraise_unknown_key(err)
            raise ConfigError(f"In config file '{cfg_filename}': {err}") from None

    def merge_from_list(self, cfg_list):
        if len(cfg_list) % 2 != 0:
            raise ConfigError(
                f"Config overrides must be KEY VALUE pairs; got an odd number of items: {cfg_list}"
            )
        try:
            return super().merge_from_list(cfg_list)
        except (KeyError, ValueError, AssertionError) as err:
            self._reraise_unknown_key(err)
            raise ConfigError(f"Bad config override: {err}") from None
