"""Property tests (issue 14): random builder arguments and random command lines get a clear error or work.

A builder may build its model or raise ``ValueError``/``TypeError`` naming the argument; nothing else (no
``AttributeError``, ``KeyError``, ``IndexError``, ``ZeroDivisionError``, TensorFlow errors from deep inside
Keras).  The command line may succeed, print a usage error (argparse's exit 2) or its own one-line
``keras-wrn CMD: error: ...`` (exit 1 or 2); it never raises and never prints a traceback.

Values are drawn from small ranges (depths up to 40, images up to 48 pixels, two or three classes, ...) so
that every valid combination builds in seconds; the command-line vocabulary holds no data a command could
train on for long.  The default run tries a few dozen cases of each; the slow suite (CI) hundreds.
"""

import contextlib
import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_wrn
from helpers import parser_actions
from keras_wrn.cli import main, make_parser

EXAMPLES = 400 if os.environ.get("KERAS_WRN_SLOW") == "1" else 40
SETTINGS = dict(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BUILDERS = [keras_wrn.create_wide_residual_network, keras_wrn.create_pre_activation_resnet,
            keras_wrn.create_residual_of_residual, keras_wrn.create_pre_residual_of_residual,
            keras_wrn.create_wrn_ram, keras_wrn.resnet26]

junk = st.one_of(st.none(), st.booleans(), st.text(max_size=6), st.just([1, 2]), st.just({"a": 1}),
                 st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-10**12, -1))
small_int = st.one_of(st.integers(-3, 40), st.integers(-3, 40).map(np.int64))
fraction = st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0.0, 0.3, np.float32(0.3), float("nan")]))
side = st.one_of(st.integers(-1, 48), st.none())
shape = st.one_of(st.tuples(side, side, st.integers(0, 4)), st.lists(side, max_size=4).map(tuple), junk)

ARGUMENTS = {
    "input_shape": shape,
    "classes": st.one_of(st.integers(-2, 12), junk),
    "depth": st.one_of(small_int, junk),
    "width": st.one_of(st.integers(-1, 3), st.sampled_from([0.5, 2.0, np.float32(2.0)]), junk),
    "dropout": st.one_of(fraction, junk),
    "include_top": st.one_of(st.booleans(), junk),
    "weights": st.one_of(st.sampled_from([None, "imagenet", "no-such-release", "/no/such/file.weights.h5",
                                          "wrn-16-1.cifar10-jpeg-e10"]), junk),
    "pooling": st.one_of(st.sampled_from([None, "avg", "max", "mean", "bogus"]), junk),
    "classifier_activation": st.one_of(st.sampled_from(["softmax", None, "linear", "bogus"]), junk),
    "weight_decay": st.one_of(st.floats(-1, 1), junk),
    "name": st.one_of(st.sampled_from(["net", "a/b", "", "x y"]), junk),
    "include_preprocessing": st.one_of(st.booleans(), junk),
    "block_type": st.one_of(st.sampled_from(["basic", "bottleneck", "bogus"]), junk),
    "adapter": st.one_of(st.sampled_from(["series", "parallel", None, "bogus"]), junk),
    "positions": st.one_of(st.sampled_from(["all", "none", "bogus", (0, 1)]), junk),
    "width_factor": st.one_of(st.sampled_from([0.25, 0.5, np.float32(0.5), 1]), junk),
    "train_shared": st.one_of(st.booleans(), junk),
}


@st.composite
def builder_calls(draw):
    builder = draw(st.sampled_from(BUILDERS))
    names = draw(st.lists(st.sampled_from(sorted(ARGUMENTS)), max_size=6, unique=True))
    return builder, {name: draw(ARGUMENTS[name]) for name in names}


@settings(**SETTINGS)
@given(builder_calls())
def test_random_builder_arguments_build_or_raise_a_clear_error(call):
    builder, kwargs = call
    kwargs.setdefault("compile", False)
    try:
        model = builder(**kwargs)
    except (ValueError, TypeError) as error:
        assert str(error), f"{builder.__name__}(**{kwargs!r}) raised an empty {type(error).__name__}"
        return
    assert model.count_params() > 0


PATHS = {}


@pytest.fixture(scope="module", autouse=True)
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-properties")
    (root / "empty").mkdir()
    (root / "file.txt").write_text("not data\n")
    (root / "bad.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    (root / "bad.pt").write_bytes(b"")
    PATHS.update(root=root, values=[str(root / "empty"), str(root / "file.txt"), str(root / "bad.weights.h5"),
                                    str(root / "bad.pt"), str(root / "missing"), str(root / "file.txt" / "under"),
                                    str(root / "out.weights.h5"), "../../etc/passwd", ""])
    return root


VALUES = ["wrn-16-1", "preact-resnet-20", "no-such-model", "wrn-16-1.cifar10-jpeg-e10", "wrn-pytorch", "svhn=3.4",
          "svhn", "digits,lfw-faces", "parallel", "scratch", "0", "-5", "1", "2", "0.5", "1e9", "nan", "inf", "abc",
          "wrn", "mirrored", "zca", "last", "best", "http://127.0.0.1:9/", "--bogus"]


def _commands():
    """``{command path: [actions]}`` of the real parser, for the leaf commands."""
    commands = {}
    for path, action in parser_actions(make_parser()):
        commands.setdefault(path[1:], []).append(action)
    return commands


COMMANDS = _commands()


@st.composite
def command_lines(draw):
    """A real (sub)command with its required arguments mostly present, some optional ones, odd values."""
    path = draw(st.sampled_from(sorted(COMMANDS)))
    value = st.one_of(st.sampled_from(VALUES), st.sampled_from(PATHS["values"]), st.text(max_size=5))
    argv = list(path)
    for action in COMMANDS[path]:
        required = action.required or not action.option_strings and action.nargs not in ("*", "?")
        if not draw(st.booleans() if not required else st.sampled_from([True] * 9 + [False])):
            continue
        if action.option_strings:
            argv.append(draw(st.sampled_from(action.option_strings)))
        if action.nargs == 0:
            continue
        choices = st.sampled_from(list(action.choices)).map(str) if action.choices else value
        count = draw(st.integers(1, 2)) if action.nargs in ("+", "*") else 1
        argv += [draw(st.one_of(choices, value) if action.choices else choices) for _ in range(count)]
    if draw(st.booleans()):
        argv.insert(draw(st.integers(0, len(argv))), draw(value))
    return argv


@settings(**SETTINGS)
@given(command_lines())
def test_random_command_lines_end_in_usage_or_one_clear_error(argv):
    stderr = io.StringIO()
    with contextlib.chdir(PATHS["root"]), contextlib.redirect_stderr(stderr), \
            contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse: --help/--version (0) or a usage error (2)
            code = exit.code
    text = stderr.getvalue()
    assert code in (0, 1, 2), (argv, code, text)
    assert "Traceback" not in text, (argv, text)
    if code and not text.startswith("usage:"):
        assert text.startswith("keras-wrn ") and ": error: " in text, (argv, text)
