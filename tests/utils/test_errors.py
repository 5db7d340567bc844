"""A user error is a short message and exit status 2; any other exception is a bug and keeps its traceback."""

import pytest

from ssl_lab.config import ConfigError
from ssl_lab.utils.errors import exit_on_user_error
from ssl_lab.utils.registry import Registry, UnknownNameError


def test_a_user_error_prints_one_line_and_exits_2(capsys, monkeypatch):
    monkeypatch.delenv("SSL_LAB_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info, exit_on_user_error():
        raise ConfigError("SOLVER.BASE_LR = -1 is invalid: it must be positive")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "ERROR: SOLVER.BASE_LR = -1 is invalid: it must be positive\n"


@pytest.mark.parametrize(
    "bug", [lambda: {}["key"], lambda: int("x"), lambda: open("/nonexistent/file")], ids=["KeyError", "ValueError", "OSError"]
)
def test_any_other_exception_keeps_its_traceback(bug, monkeypatch):
    monkeypatch.delenv("SSL_LAB_DEBUG", raising=False)
    with pytest.raises((KeyError, ValueError, OSError)), exit_on_user_error():
        bug()  # propagates: the interpreter prints its traceback


def test_a_registry_miss_names_the_closest_and_every_registered_name():
    registry = Registry("THING")
    for name in ("ResNet", "ViT"):
        registry.register(type(name, (), {}))
    with pytest.raises(UnknownNameError) as err:
        registry.get("ResNt")
    assert str(err.value).startswith("No THING named 'ResNt'. Did you mean 'ResNet'? Registered: ResNet, ViT")
    assert isinstance(err.value, KeyError)  # callers that catch KeyError still do
