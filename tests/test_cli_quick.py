"""A quick, quiet command line: light commands without TensorFlow, no TensorFlow log lines, help for every
option, progress without control characters in a piped log."""

import os
import subprocess
import sys

import pytest

import keras_wrn
from helpers import parser_actions
from keras_wrn.cli import make_parser

LIGHT = [["--version"], ["list"], ["list", "wrn-28-*"], ["weights", "list"],
         ["weights", "show", "wrn-16-1.cifar10-jpeg-e10"], ["--help"], ["weights", "--help"],
         ["weights", "download", "--help"], ["train", "--help"], ["finetune", "--help"], ["plot", "--help"]]

PROBE = """
import sys
from keras_wrn.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("tensorflow", "keras", "torch", "jax", "matplotlib", "h5py") if m in sys.modules)
print("HEAVY", heavy, "CODE", code)
"""


@pytest.mark.parametrize("arguments", LIGHT, ids=" ".join)
def test_light_commands_do_not_import_tensorflow(arguments):
    out = subprocess.run([sys.executable, "-c", PROBE, *arguments], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY [] CODE 0" in out.stdout
    assert out.stderr == ""


def test_version():
    out = subprocess.run([sys.executable, "-m", "keras_wrn", "--version"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == f"keras-wrn {keras_wrn.__version__}"


def test_no_tensorflow_log_lines_on_stderr():
    """TensorFlow's start-up lines (absl, oneDNN, cuInit, CPU features) are silenced by the command itself."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-m", "keras_wrn", "summary", "wrn-16-1"], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0 and "wrn_16_1" in out.stdout
    assert out.stderr == "", out.stderr


def test_every_option_and_command_has_help():
    missing = [f"{' '.join(path)} {action.dest}" for path, action in parser_actions(make_parser()) if not action.help]
    assert missing == []


def test_weights_has_real_sub_commands(capsys):
    for command in ("list", "show", "verify", "download", "release"):
        with pytest.raises(SystemExit):
            make_parser().parse_args(["weights", command, "--help"])
        assert f"usage: keras-wrn weights {command}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        make_parser().parse_args(["weights", "show"])  # a release name is required
    assert "the following arguments are required: release" in capsys.readouterr().err


def test_evaluate_in_a_pipe_prints_plain_progress_lines(tmp_path):
    out = subprocess.run([sys.executable, "-m", "keras_wrn", "evaluate", "wrn-16-1", "--weights",
                          "wrn-16-1.cifar10-jpeg-e10", "--data", "cifar10-jpeg-sample", "--confusion",
                          str(tmp_path / "cm.png")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "evaluate: done" in out.stdout and "top-1 error 18.70%" in out.stdout
    for control in ("\x1b", "\b", "\r"):
        assert control not in out.stdout + out.stderr


def test_plain_progress_lines_skip_the_outputs_of_a_predict_batch():
    """A prediction slower than the line interval hands its batch outputs to the callback: no crash, no array."""
    import io

    import numpy as np

    from keras_wrn.training.progress import PeriodicProgress

    stream = io.StringIO()
    progress = PeriodicProgress("evaluate", every_seconds=0.0, stream=stream)
    progress.set_params({"steps": 4})
    progress.on_predict_begin()
    progress.on_predict_batch_end(0, {"outputs": np.zeros((500, 10), "float32")})
    progress.on_test_batch_end(1, {"loss": np.float32(0.5), "accuracy": 0.25})
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("evaluate: step 1/4 (25%), ") and "outputs" not in lines[0]
    assert lines[1].startswith("evaluate: step 2/4 (50%), loss 0.5000, accuracy 0.2500, ")


def test_the_light_parser_offers_exactly_the_recipes_and_test_time_augmentations_the_library_has():
    """The parser cannot import the recipe table or the evaluation module (they start TensorFlow), so it
    names their keys itself; this pins the two lists to their homes."""
    from keras_wrn.recipes import RECIPES
    from keras_wrn.training.evaluation import TTA_CHOICES

    actions = {(" ".join(path[1:]), action.dest): action for path, action in parser_actions(make_parser())}
    assert tuple(actions["evaluate", "tta"].choices) == TTA_CHOICES
    for command in ("train", "finetune"):
        listed = actions[command, "recipe"].help.partition(" (default")[0].split(", ")
        assert listed == list(RECIPES), command
