"""The examples/ scripts run end to end on a small image folder."""

import os
import subprocess
import sys

import pytest

from helpers import write_image_folder

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def run_example(name, *arguments, cwd=None):
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *map(str, arguments)],
                         capture_output=True, text=True, env=QUIET, timeout=600, cwd=cwd)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_train_resume_evaluate_finetune_examples(tmp_path):
    data = write_image_folder(tmp_path / "data")
    run = tmp_path / "run"
    assert "test error after 1 epochs" in run_example("train_cifar10.py", "--data", data, "--out", run, "--epochs", "1")
    assert "resuming after epoch 1 of 1" in run_example("resume.py", run)
    output = run_example("evaluate.py", "wrn-16-1", run / "best.weights.h5", "--data", data,
                         "--confusion", tmp_path / "cm.png")
    assert "top-1 error" in output and os.path.exists(tmp_path / "cm.png")
    output = run_example("finetune_folder.py", run / "best.weights.h5", data / "train", "--epochs", "1",
                         "--freeze-backbone", "--out", tmp_path / "ft.weights.h5")
    assert "validation accuracy" in output and os.path.exists(tmp_path / "ft.weights.h5")
