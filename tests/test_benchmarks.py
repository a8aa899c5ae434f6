"""The benchmark suite runs (a smoke run: its timings are not checked, this machine is noisy)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_benchmark_quick_run_compares_equal_architectures():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--quick", "--models",
                          "wrn-16-1,resnet26-series", "--other-backends", "jax,torch"], capture_output=True,
                         text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| wrn-16-1 |")]
    assert [row.split("|")[2].strip() for row in rows] == ["keras_wrn", "plain Keras", "PyTorch eager",
                                                           "keras_wrn on jax", "keras_wrn on torch"]
    assert len({row.split("|")[3].strip() for row in rows}) == 1  # the same trainable parameter count
    series = [line.split("|") for line in out.stdout.splitlines()
              if line.startswith("| resnet26-series |") and len(line.split("|")) == 12]  # the throughput table
    assert [row[2].strip() for row in series] == ["keras_wrn", "PyTorch eager"]  # no plain-Keras adapter model
    assert series[0][3] == series[1][3]  # frozen shared convs on both sides: equal trainable counts
    adapter_rows = [line.split("|") for line in out.stdout.splitlines() if line.startswith("| resnet26-series | ")
                    and len(line.split("|")) == 5]  # the adapter-cost table: model, train ratio, inference ratio
    assert len(adapter_rows) == 1 and float(adapter_rows[0][2].split()[0]) > 0


@pytest.mark.parametrize("argument, value, message", [
    ("--other-backends", "mxnet", "--other-backends: expected some of ['jax', 'torch']"),
    ("--other-backends", "tensorflow", "--other-backends: expected some of ['jax', 'torch']"),  # the main backend
    ("--implementations", "keras_wrn,caffe", "--implementations: unknown ['caffe']"),
])
def test_benchmark_rejects_bad_arguments_before_measuring(argument, value, message):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), argument, value, "--out", ""],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert message in out.stderr
