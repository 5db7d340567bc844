"""fvcore's Registry, whose miss names the registered objects, closest first."""
import difflib

from fvcore.common.registry import Registry as _FvcoreRegistry

from .errors import UserError

__all__ = ["Registry", "UnknownNameError"]

_SHOWN = 12


class UnknownNameError(UserError, KeyError):
    """A config names an object that its registry does not hold."""


class Registry(_FvcoreRegistry):
    """`get(name)` of an unregistered name raises UnknownNameError listing the valid names."""

    def get(self, name: str):
        obj = self._obj_map.get(name)
        if obj is None:
            names = list(self._obj_map)
            ranked = difflib.get_close_matches(name, names, n=len(names), cutoff=0.0)  # best match first
            shown = ", ".join(ranked[:_SHOWN]) + (f", ... ({len(names)} in all)" if len(names) > _SHOWN else "")
            raise UnknownNameError(f"'{name}' is not in the {self._name} registry; the registered names, closest "
                                   f"first: {shown or 'none (is the project that registers it in IMPORTS?)'}")
        return obj
