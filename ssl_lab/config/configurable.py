"""`@configurable`: build a component from a config or from explicit arguments (detectron2's pattern)."""
import functools

from fvcore.common.config import CfgNode as _FvcoreCfgNode


def configurable(init_func):
    """Decorate `__init__` of a class that has `from_config(cls, cfg) -> dict of __init__ arguments`.

    `Cls(cfg, **overrides)` calls `Cls(**{**Cls.from_config(cfg), **overrides})`; `Cls(**kwargs)`
    is the plain constructor. A subclass extends its parent's arguments with
    `{**super().from_config(cfg), "extra": ...}`, so it states only what differs.
    """

    @functools.wraps(init_func)
    def wrapped(self, *args, **kwargs):
        if args and isinstance(args[0], _FvcoreCfgNode):
            if len(args) > 1:
                raise TypeError(f"{type(self).__name__}(cfg, ...) takes the config and keyword overrides only")
            kwargs = {**type(self).from_config(args[0]), **kwargs}
            args = ()
        init_func(self, *args, **kwargs)

    return wrapped
