"""The one error class of the model zoo, and its KeyError flavour for unknown names."""
from ssl_lab.utils.errors import UserError


class ModelZooError(UserError, RuntimeError):
    """A checkpoint that cannot be resolved, downloaded or verified.

    The message names the model / URL / file and says what was expected.
    """


class UnknownModelError(ModelZooError, KeyError):
    """A model name that is not in the catalog; the message lists close names."""

    def __str__(self):  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""
