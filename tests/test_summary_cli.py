"""keras_wrn.summary, plotting and the keras-wrn command."""

import os
import shutil
import subprocess
import sys

import pytest

import keras_wrn
from keras_wrn import cli
from keras_wrn.plotting import GraphvizMissingError


def wrn_macs(depth, k, classes=10, side=32):
    """Multiply-accumulates of WRN-depth-k for one image, counted by hand."""
    n = (depth - 4) // 6
    macs = side * side * 16 * 27
    channels = 16
    for group, width in enumerate([16 * k, 32 * k, 64 * k]):
        for block in range(n):
            if block == 0 and group > 0:
                side //= 2
            macs += side * side * width * 9 * channels  # conv1 (strided output)
            macs += side * side * width * 9 * width  # conv2
            if channels != width or (block == 0 and group > 0):
                macs += side * side * width * channels  # projection
            channels = width
    return macs + channels * classes


@pytest.mark.parametrize("name,depth,k", [("wrn-16-1", 16, 1), ("wrn-16-4", 16, 4), ("wrn-28-10", 28, 10)])
def test_macs_match_a_hand_count(name, depth, k):
    stats = keras_wrn.model_stats(keras_wrn.create_model(name, compile=False))
    assert stats["macs"] == wrn_macs(depth, k)


def test_wrn_16_4_costs_what_machine_md_says():
    # ../shared/reference/machine.md: about 0.78 GFLOP per image forward.
    stats = keras_wrn.model_stats(keras_wrn.create_model("wrn-16-4", compile=False))
    assert 2 * stats["macs"] / 1e9 == pytest.approx(0.78, abs=0.01)


def test_activation_memory_counts_every_layer_output():
    model = keras_wrn.create_model("wrn-16-1", compile=False)
    expected = sum(
        4 * int(__import__("math").prod(layer.output.shape[1:]))
        for layer in model.layers[1:]
    )
    assert keras_wrn.model_stats(model)["activation_bytes"] == expected


def test_summary_prints_and_returns(capsys):
    stats = keras_wrn.summary(keras_wrn.create_model("wrn-16-1", compile=False))
    out = capsys.readouterr().out
    assert "Trainable parameters          175,066" in out
    assert "Multiply-accumulates / image" in out and "Activation memory / image" in out
    assert stats["non_trainable_params"] == 928


def test_cli_summary(capsys):
    assert cli.main(["summary", "wrn-16-1", "--classes", "100"]) == 0
    out = capsys.readouterr().out
    assert "wrn_16_1" in out and f"{175_066 + 64 * 90 + 90:,}" in out


def test_cli_list(capsys):
    assert cli.main(["list", "preact-*"]) == 0
    assert capsys.readouterr().out.split() == ["preact-1001", "preact-110", "preact-164", "preact-20", "preact-56",
                                              "preact-wide-14-4"]


def test_cli_errors_name_the_problem(capsys):
    assert cli.main(["summary", "wrn-29-10"]) == 2
    assert "unknown model name='wrn-29-10'" in capsys.readouterr().err
    assert cli.main(["plot", "wrn-16-1", "out.gif"]) == 2
    assert "expected one of ('.png'" in capsys.readouterr().err
    assert cli.main(["list", "resnet-*"]) == 2


def test_plot_writes_a_png(tmp_path):
    assert shutil.which("dot"), "Graphviz must be installed (scripts/setup.sh installs it)"
    out = tmp_path / "wrn.png"
    assert cli.main(["plot", "wrn-16-1", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["wrn.png"]  # no temporary left behind


def test_plot_without_graphviz_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    model = keras_wrn.create_model("wrn-16-1", compile=False)
    with pytest.raises(GraphvizMissingError, match="apt-get install graphviz"):
        keras_wrn.plot_architecture(model, tmp_path / "x.png")
    assert cli.main(["plot", "wrn-16-1", str(tmp_path / "x.png")]) == 1
    assert "brew install graphviz" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_console_script_is_installed():
    exe = shutil.which("keras-wrn", path=os.path.dirname(sys.executable))
    assert exe, "keras-wrn is installed by `pip install -e .`"
    result = subprocess.run([exe, "list", "ror3-*"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ror3-110", "ror3-164", "ror3-56", "ror3-wrn-40-2", "ror3-wrn-58-4"]
