"""fvcore's Registry whose miss is a user error naming the registered names and the closest one."""

import difflib

from fvcore.common.registry import Registry as _FvcoreRegistry

from .errors import UserError

__all__ = ["Registry", "UnknownNameError"]


class UnknownNameError(UserError, KeyError):
    """A config names a component no registry entry has (a typo, or a project not in IMPORTS)."""

    def __str__(self):  # KeyError's str() quotes its message
        return str(self.args[0])


class Registry(_FvcoreRegistry):
    """`get(name)` raises :class:`UnknownNameError` listing the valid names (closest first)."""

    def get(self, name: str):
        if name in self:
            return super().get(name)
        names = sorted(self._obj_map)
        close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UnknownNameError(
            f"No {self._name} named '{name}'.{hint} Registered: {', '.join(names)} (a project's names need its package in IMPORTS)"
        )
