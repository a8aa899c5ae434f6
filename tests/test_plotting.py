"""keras_wrn.plotting: the block-level view, its errors, and an import that does not load Keras."""

import html
import itertools
import os
import re
import shutil
import subprocess
import sys

import keras
import pytest

import keras_wrn
from keras_wrn.plotting import GraphvizMissingError, plot_architecture

needs_graphviz = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


@pytest.fixture(scope="module")
def wrn_16_2():
    return keras_wrn.create_model("wrn-16-2", compile=False)


def label_lines(label):
    """An HTML-like Graphviz label as plain lines: ``<<b>stem</b><br/>3x3 conv>`` -> ``[stem, 3x3 conv]``."""
    return [html.unescape(re.sub(r"</?b>", "", line)) for line in label[1:-1].split("<br/>")]


def read_dot(path):
    """``(nodes, edges)`` of a .dot file written by the block view (one statement a line).

    ``nodes``: ``{id: label lines}``; ``edges``: ``[(source, target, label lines or None)]``.
    """
    nodes, edges = {}, []
    for line in path.read_text(encoding="utf-8").splitlines():
        edge = re.match(r"^(\w+) -> (\w+)(?: \[(.*)\])?;$", line)
        node = re.match(r"^(\w+) \[label=(<.*>)(?:, .*)?\];$", line)
        if edge:
            label = re.match(r"label=(<.*>)(?:, |$)", edge.group(3) or "")
            edges.append((edge.group(1), edge.group(2), label_lines(label.group(1)) if label else None))
        elif node and node.group(1) not in ("node", "edge", "graph"):
            nodes[node.group(1)] = label_lines(node.group(2))
    return nodes, edges


def block_dot(model, tmp_path, **kwargs):
    path = tmp_path / f"{model.name}.dot"
    assert plot_architecture(model, path, level="block", **kwargs) == str(path)
    return read_dot(path)


def parameters_in(lines):
    counts = [int(match.group(1).replace(",", "")) for line in lines
              for match in [re.match(r"([\d,]+) params?\b", line)] if match]
    return counts[0] if counts else 0


def edge_parameters(edges):
    return sum(parameters_in(label) for _, _, label in edges if label)


@needs_graphviz
def test_wrn_16_2_has_one_node_per_unit_with_its_shapes(wrn_16_2, tmp_path):
    nodes, edges = block_dot(wrn_16_2, tmp_path)
    by_title = {lines[0]: lines for lines in nodes.values()}
    units = [f"group{group}_block{unit}" for group in (1, 2, 3) for unit in (1, 2)]
    assert sorted(by_title) == sorted(["stem", "pooling", "head"] + units)
    assert len(nodes) == 6 + 3
    assert by_title["stem"][-2:] == ["32x32x3 -> 32x32x16", "432 params"]
    assert by_title["group1_block1"][1:4] == ["pre-act basic", "projection shortcut (1x1 conv)",
                                              "32x32x16 -> 32x32x32"]
    assert by_title["group1_block2"][1:4] == ["pre-act basic", "identity shortcut", "32x32x32 -> 32x32x32"]
    assert by_title["group2_block1"][1:4] == ["pre-act basic, stride 2", "projection shortcut (1x1 conv /2)",
                                              "32x32x32 -> 16x16x64"]
    assert by_title["group3_block1"][3] == "16x16x64 -> 8x8x128"
    assert by_title["group3_block2"][3] == "8x8x128 -> 8x8x128"
    assert by_title["pooling"][1:3] == ["BN, ReLU, global avg pool", "8x8x128 -> 128"]
    assert by_title["head"][1:3] == ["dense 10, softmax", "128 -> 10"]
    assert parameters_in(by_title["group2_block2"]) == sum(
        wrn_16_2.get_layer(f"group2_block2_{name}").count_params() for name in ("bn1", "conv1", "bn2", "conv2"))
    assert sum(parameters_in(lines) for lines in nodes.values()) == wrn_16_2.count_params()
    order = {lines[0]: name for name, lines in nodes.items()}
    chain = ["stem"] + units + ["pooling", "head"]
    assert sorted((source, target) for source, target, _ in edges) == sorted(
        (order[a], order[b]) for a, b in itertools.pairwise(chain))


@needs_graphviz
def test_shapes_and_names_can_be_left_out(wrn_16_2, tmp_path):
    nodes, _ = block_dot(wrn_16_2, tmp_path, show_shapes=False, show_layer_names=False)
    text = "\n".join(line for lines in nodes.values() for line in lines)
    assert len(nodes) == 9
    assert "->" not in text and "group1_block1" not in text and "stem" not in text
    assert "pre-act basic, stride 2" in text


@needs_graphviz
def test_preact_164_collapses_identical_units(tmp_path):
    model = keras_wrn.create_model("preact-164", compile=False)
    nodes, _ = block_dot(model, tmp_path)
    titles = [lines[0] for lines in nodes.values()]
    assert len(nodes) == 9  # stem, 2 nodes per group (of 18 units), pooling, head
    collapsed = {lines[0]: lines for lines in nodes.values()}["group2 blocks 2-18 (x17 identical)"]
    assert collapsed[1:4] == ["pre-act bottleneck (32-32-128)", "identity shortcut", "16x16x128 -> 16x16x128"]
    assert collapsed[4] == f"{17 * 18_176:,} params (18,176 each)"
    assert "group3_block1" in titles and "group1 blocks 2-18 (x17 identical)" in titles
    assert sum(parameters_in(lines) for lines in nodes.values()) == model.count_params()


@needs_graphviz
def test_ror_long_shortcuts_are_edges_to_their_additions(tmp_path):
    model = keras_wrn.create_model("ror3-wrn-40-2", compile=False)
    nodes, edges = block_dot(model, tmp_path)
    title_of = {name: lines[0] for name, lines in nodes.items()}
    shortcuts = {label[0]: (title_of[source], title_of[target]) for source, target, label in edges if label}
    assert shortcuts == {
        "group1_shortcut": ("stem", "group1_shortcut_add"),
        "group2_shortcut": ("group1_shortcut_add", "group2_shortcut_add"),
        "group3_shortcut": ("group2_shortcut_add", "group3_shortcut_add"),
        "root_shortcut": ("stem", "root_shortcut_add"),
    }
    assert "group2 blocks 2-6 (x5 identical)" in title_of.values()
    assert sum(parameters_in(lines) for lines in nodes.values()) + edge_parameters(edges) == model.count_params()


@needs_graphviz
def test_block_png_is_written_atomically(wrn_16_2, tmp_path):
    out = tmp_path / "wrn.png"
    assert plot_architecture(wrn_16_2, out, level="block") == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["wrn.png"]


@needs_graphviz
@pytest.mark.slow
def test_preact_1001_is_a_small_picture(tmp_path):
    model = keras_wrn.create_model("preact-1001", compile=False)
    nodes, _ = block_dot(model, tmp_path)
    assert len(nodes) < 40
    assert "group2 blocks 2-111 (x110 identical)" in [lines[0] for lines in nodes.values()]
    assert sum(parameters_in(lines) for lines in nodes.values()) == model.count_params()


@pytest.mark.parametrize("level", ["layer", "block"])
def test_errors_name_the_argument(wrn_16_2, tmp_path, level):
    with pytest.raises(ValueError, match=r"path=.*'\.gif'"):
        plot_architecture(wrn_16_2, tmp_path / "x.gif", level=level)
    with pytest.raises(ValueError, match="directory of path="):
        plot_architecture(wrn_16_2, tmp_path / "missing" / "x.png", level=level)
    assert not list(tmp_path.iterdir())


def test_unknown_level_is_refused(wrn_16_2, tmp_path):
    with pytest.raises(ValueError, match=r"level='units' is not allowed; expected one of \('layer', 'block'\)"):
        plot_architecture(wrn_16_2, tmp_path / "x.png", level="units")
    assert not list(tmp_path.iterdir())


@needs_graphviz
def test_block_view_needs_a_functional_model(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="needs a Functional model"):
        plot_architecture(model, tmp_path / "x.png", level="block")


def test_block_view_without_graphviz_says_how_to_install(wrn_16_2, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(GraphvizMissingError, match="apt-get install graphviz"):
        plot_architecture(wrn_16_2, tmp_path / "x.png", level="block")
    monkeypatch.setitem(sys.modules, "pydot", None)
    with pytest.raises(GraphvizMissingError, match="pip install pydot"):
        plot_architecture(wrn_16_2, tmp_path / "x.png", level="block")
    assert not list(tmp_path.iterdir())


def test_import_does_not_load_keras():
    code = ("import keras_wrn.plotting, sys; "
            "loaded = [name for name in ('keras', 'tensorflow') if name in sys.modules]; "
            "assert not loaded, loaded")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr
