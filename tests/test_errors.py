"""Errors name the parameter they concern in library terms; the command line words it as
the flag. Library message strings never name a flag themselves."""

from __future__ import annotations

import pickle

import pytest

from attnviz.cli._errors import flag, report
from attnviz.errors import AttnvizError, IndexSpecError, InputError
from attnviz.saved import parse_size


def test_an_error_names_its_option_as_the_parameter_and_the_cli_as_the_flag(capsys) -> None:
    with pytest.raises(InputError) as caught:
        parse_size("5X")
    error = caught.value
    assert error.option == "max_bytes"
    assert str(error) == "max_bytes '5X' is not a size"
    report(error)
    assert capsys.readouterr().err.splitlines() == [
        "error: --max-bytes '5X' is not a size",
        "hint: e.g. 500M, 4G or 1048576",
    ]


def test_flag_names_follow_the_parameter_names() -> None:
    assert flag("max_bytes") == "--max-bytes"
    assert flag("layer") == "--layer"
    assert flag("output") == "-o"


def test_an_error_without_an_option_is_worded_as_written() -> None:
    error = AttnvizError("a {brace} in user text stays", hint="as {is}")
    assert error.worded(flag) == ("a {brace} in user text stays", "as {is}")


def test_errors_survive_a_process_boundary() -> None:
    # export's workers send errors back pickled; a subclass with its own signature too
    for error in (
        InputError("{max_bytes} too small", hint="raise {max_bytes}", option="max_bytes"),
        IndexSpecError("head", "{name} 7 is out of range", hint="{name}s are 0-based"),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (str(copy), copy.hint, copy.option) == (str(error), error.hint, error.option)
        assert copy.worded(flag) == error.worded(flag)
        assert copy.exit_code == error.exit_code
    assert IndexSpecError("head", "{name} 7", hint="{name}s").worded(flag) == ("--head 7", "--heads")


def test_a_subclass_that_sets_its_own_message_is_reported_as_set(capsys) -> None:
    class Own(AttnvizError):
        def __init__(self) -> None:  # does not call AttnvizError.__init__
            Exception.__init__(self, "own words")
            self.message, self.hint = "own words", "own hint"

    report(Own())
    assert capsys.readouterr().err.splitlines() == ["error: own words", "hint: own hint"]
