"""The README's first command runs the demo: released weights on the bundled sample, summary, plot."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_runs_offline(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "demo.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "top-1 error on the bundled sample (1000 cifar10-jpeg test images)" in out.stdout
    assert "Total parameters" in out.stdout
    assert sorted(os.listdir(tmp_path)) == sorted(["wrn-16-1.png", "confusion-wrn-16-1.cifar10-jpeg-e10-sample.png"])


@pytest.mark.slow
def test_demo_without_graphviz_finishes_and_says_how_to_get_the_plot(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PATH=str(tmp_path))  # no `dot` on PATH
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "demo.py"), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "architecture plot skipped: Graphviz's `dot` program was not found" in out.stdout
    assert "Traceback" not in out.stderr
    assert os.listdir(tmp_path / "out") == ["confusion-wrn-16-1.cifar10-jpeg-e10-sample.png"]
