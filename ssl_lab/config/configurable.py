"""`@configurable`: build a component from a config or from explicit arguments (detectron2's
`detectron2/config/config.py`, `configurable`, its `__init__` form)."""

import functools
import inspect

from fvcore.common.config import CfgNode as _FvcoreCfgNode

__all__ = ["configurable"]


def configurable(init_func):
    """Decorate `__init__` of a class that has a classmethod `from_config(cls, cfg, *extra) -> dict`.

    `Cls(cfg, *extra, **kwargs)` (or `Cls(cfg=cfg, ...)`) calls `Cls.__init__(**from_config(cfg, *extra,
    **kwargs))`: keyword arguments that `from_config` does not take go to `__init__` as they are, and
    override what it returned. `Cls(**kwargs)` is the plain constructor. `extra` are the arguments a
    registry passes after the config (a head's `in_dim`, a queue's `dim`). A subclass extends its
    parent's arguments with `{**super().from_config(cfg, *extra), "own": ...}`.
    """
    if not (inspect.isfunction(init_func) and init_func.__name__ == "__init__"):
        raise TypeError(f"@configurable decorates an __init__, not {init_func!r}")

    @functools.wraps(init_func)
    def wrapped(self, *args, **kwargs):
        if not _called_with_cfg(*args, **kwargs):
            init_func(self, *args, **kwargs)
            return
        from_config = getattr(type(self), "from_config", None)
        if not inspect.ismethod(from_config):
            raise TypeError(f"{type(self).__name__}(cfg) needs a from_config classmethod")
        init_func(self, **_get_args_from_config(from_config, *args, **kwargs))

    return wrapped


def _get_args_from_config(from_config, *args, **kwargs) -> dict:
    """The `__init__` keyword arguments: `from_config`'s result, updated with the keyword arguments
    that `from_config` does not take (all go to `from_config` when it has `*args` or `**kwargs`)."""
    signature = inspect.signature(from_config)
    if next(iter(signature.parameters), None) != "cfg":
        raise TypeError(f"{from_config.__qualname__} must take 'cfg' as its first argument")
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values()):
        return from_config(*args, **kwargs)
    to_init = {name: kwargs.pop(name) for name in list(kwargs) if name not in signature.parameters}
    return {**from_config(*args, **kwargs), **to_init}


def _called_with_cfg(*args, **kwargs) -> bool:
    """Whether the call passes a config (first positional argument or `cfg=`) for `from_config`."""
    return isinstance(args[0] if args else kwargs.get("cfg"), _FvcoreCfgNode)
