"""Architecture diagrams (pydot + Graphviz's ``dot``), layer by layer or residual unit by unit.

``level="layer"`` draws every layer with `keras.utils.plot_model`.
``level="block"`` draws one node per residual unit, read from the layer names
the builders give (``group2_block3_conv1``, ``stage1_block2_add``, ``stem_conv``,
``root_shortcut_conv``, ``final_bn``, ``avg_pool``, ``predictions``) and from the
connections in ``model.get_config()``.

Keras is imported only by the layer view, so importing this module stays cheap.
"""

import html
import json
import os
import re
import shutil

from keras_wrn.io import atomic_write

__all__ = ["GraphvizMissingError", "plot_architecture"]

PLOT_FORMATS = (".png", ".svg", ".pdf", ".dot")
LEVELS = ("layer", "block")

INSTALL_GRAPHVIZ = (
    "Graphviz's `dot` program was not found on PATH; plotting needs it. Install it with "
    "`apt-get install graphviz` (Debian/Ubuntu), `dnf install graphviz` (Fedora), "
    "`brew install graphviz` (macOS) or `conda install graphviz`, then try again."
)


class GraphvizMissingError(RuntimeError):
    """Raised when pydot or Graphviz's ``dot`` is not installed."""


def plot_architecture(model, path, show_shapes=True, show_layer_names=True, dpi=72, rankdir="TB",
                      level="layer"):
    """Draw ``model`` to ``path`` (.png, .svg, .pdf or .dot) and return the path.

    ``level="layer"`` draws every layer (`keras.utils.plot_model`).
    ``level="block"`` draws the stem, one node per residual unit (its name,
    kind, shortcut, input -> output shape and parameters), the final pooling
    and the classifier; units of a group are boxed together, and a run of
    consecutive identical units (same layers, shapes and parameters, identity
    shortcuts) becomes one node ``group2 blocks 2-111 (x110 identical)``.
    Shortcuts that skip whole groups (RoR's level-1 and level-2 projections)
    are dashed, labelled edges from where they branch off to the addition that
    merges them (an ellipse).  ``show_shapes`` and ``show_layer_names`` choose
    the shape and name lines of each node.

    The file is written to a temporary name beside ``path`` and renamed into
    place, so an interrupted plot never leaves a truncated file.

    Raises:
        ValueError: unsupported extension, a missing output directory or an unknown ``level``.
        GraphvizMissingError: pydot or Graphviz is not installed (with how to install).
    """
    path = os.fspath(path)
    if level not in LEVELS:
        raise ValueError(f"plot_architecture: level={level!r} is not allowed; expected one of {LEVELS}.")
    extension = os.path.splitext(path)[1].lower()
    if extension not in PLOT_FORMATS:
        raise ValueError(
            f"plot_architecture: path={path!r} has extension {extension!r}; expected one of {PLOT_FORMATS}."
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"plot_architecture: the directory of path={path!r} does not exist.")
    try:
        import pydot  # noqa: F401
    except ImportError as error:
        raise GraphvizMissingError("pydot is not installed: `pip install pydot`.") from error
    if shutil.which("dot") is None:
        raise GraphvizMissingError(INSTALL_GRAPHVIZ)

    if level == "layer":
        import keras  # imported here: it starts TensorFlow

        atomic_write(path, lambda temporary: keras.utils.plot_model(
            model, to_file=temporary, show_shapes=show_shapes, show_layer_names=show_layer_names,
            rankdir=rankdir, dpi=dpi))
        return path

    graph = _block_graph(model, show_shapes, show_layer_names, dpi, rankdir)
    if extension == ".dot":
        atomic_write(path, graph.write_raw)
    else:
        atomic_write(path, lambda temporary: graph.write(temporary, format=extension[1:]))
    return path


# --- the model's layers, read from its config ------------------------------------------------

_UNIT = re.compile(r"^(?P<group>(?:group|stage)\d+)_block(?P<index>\d+)_(?P<rest>.+)$")
_GROUP = re.compile(r"^(?P<group>(?:group|stage)\d+)_")
_PATH = re.compile(r"^(?P<path>.+_shortcut)_(?!add$)")
_POOLING = ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "AveragePooling2D", "MaxPooling2D", "Flatten")


class _Layer:
    """One layer of the model: name, class, config, inbound layer names, output shape, parameters."""

    def __init__(self, entry, parameters):
        self.name = entry["name"]
        self.class_name = entry["class_name"]
        self.config = entry.get("config") or {}
        self.inputs = []
        self.input_shapes = {}
        for name, shape in _tensors(entry.get("inbound_nodes", [])):
            if name not in self.inputs:
                self.inputs.append(name)
            if shape is not None:
                self.input_shapes.setdefault(name, tuple(shape))
        self.output_shape = None
        self.parameters = parameters


def _tensors(value):
    """``(layer name, shape or None)`` for every tensor named in a config's ``inbound_nodes``."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            config = value.get("config", {})
            yield config["keras_history"][0], config.get("shape")
            return
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
            yield value[0], None
            return
        for item in value:
            yield from _tensors(item)


def _read_layers(model):
    """The model's layers in the config's (topological) order, with their output shapes."""
    try:
        config = model.get_config()
    except NotImplementedError:
        config = None
    entries = config.get("layers") if isinstance(config, dict) else None
    if not entries or not all(isinstance(entry, dict) and "inbound_nodes" in entry for entry in entries):
        raise ValueError(f"plot_architecture: level='block' needs a Functional model; model={model.name!r} is "
                         f"a {type(model).__name__}.")
    parameters = {layer.name: layer.count_params() for layer in model.layers}
    layers = [_Layer(entry, parameters[entry["name"]]) for entry in config["layers"]]
    by_name = {layer.name: layer for layer in layers}
    for layer in layers:
        for name, shape in layer.input_shapes.items():
            if name in by_name and by_name[name].output_shape is None:
                by_name[name].output_shape = shape
    outputs = config.get("output_layers") or []
    if outputs and isinstance(outputs[0], str):
        outputs = [outputs]
    for (name, *_), tensor in zip(outputs, model.outputs):
        if by_name[name].output_shape is None:
            by_name[name].output_shape = tuple(tensor.shape)
    for layer in layers:
        if layer.output_shape is None and layer.class_name == "InputLayer":
            shape = layer.config.get("batch_shape") or layer.config.get("batch_input_shape")
            layer.output_shape = tuple(shape) if shape else None
    return layers


# --- layers grouped into the diagram's parts -------------------------------------------------

class _Part:
    """Layers drawn as one node (stem, a unit, a merge, pooling, head) or one edge (a long shortcut)."""

    def __init__(self, key, kind, group=None, index=None):
        self.key, self.kind, self.group, self.index = key, kind, group, index
        self.layers = []
        self.sources, self.targets = [], []  # neighbouring parts, in order of first connection

    @property
    def parameters(self):
        return sum(layer.parameters for layer in self.layers)

    def external_inputs(self):
        """``(layer name, shape)`` of the tensors that enter this part, in order."""
        inside = {layer.name for layer in self.layers}
        seen = []
        for layer in self.layers:
            for name in layer.inputs:
                if name not in inside and all(name != other for other, _ in seen):
                    seen.append((name, layer.input_shapes.get(name)))
        return seen

    def input_shape(self):
        inputs = self.external_inputs()
        if inputs:
            return inputs[0][1]
        inputs = [layer for layer in self.layers if layer.class_name == "InputLayer"]
        return inputs[0].output_shape if inputs else None

    def output_shape(self):
        return self.layers[-1].output_shape if self.layers else None

    def signature(self):
        """What must match for two units to count as identical."""
        rows = []
        for layer in self.layers:
            config = {key: value for key, value in layer.config.items() if key != "name"}
            rest = _UNIT.match(layer.name).group("rest") if _UNIT.match(layer.name) else layer.name
            rows.append((rest, layer.class_name, layer.output_shape, layer.parameters,
                         json.dumps(config, sort_keys=True, default=str)))
        return self.input_shape(), tuple(rows)


def _classify(layer, parts_of, parts):
    """The key of the part ``layer`` belongs to, creating the part if needed."""
    name = layer.name
    unit = _UNIT.match(name)
    if unit:
        key = f"{unit.group('group')}_block{unit.group('index')}"
        return _new_part(parts, key, "unit", unit.group("group"), int(unit.group("index")))
    if layer.class_name == "InputLayer" or name == "stem" or name.startswith("stem_"):
        key, kind = "stem", "stem"
    elif _PATH.match(name):
        key, kind = _PATH.match(name).group("path"), "path"
    elif layer.class_name in ("Add", "Concatenate", "Multiply", "Average"):
        key, kind = name, "merge"
    elif name.startswith("final_") or layer.class_name in _POOLING:
        key, kind = "pooling", "pooling"
    elif layer.class_name == "Dense" or name == "predictions":
        key, kind = "head", "head"
    else:
        sources = [parts_of[source] for source in layer.inputs if source in parts_of]
        return sources[0] if sources else _new_part(parts, "stem", "stem")
    group = _GROUP.match(key)
    return _new_part(parts, key, kind, group.group("group") if group else None)


def _new_part(parts, key, kind, group=None, index=None):
    """``key``, after adding its part to ``parts`` if it is not there yet."""
    if key not in parts:
        parts[key] = _Part(key, kind, group, index)
    return key


def _read_parts(model):
    """The diagram's parts in the order the model computes them, connected to each other."""
    parts, parts_of = {}, {}
    for layer in _read_layers(model):
        key = _classify(layer, parts_of, parts)
        parts_of[layer.name] = key
        parts[key].layers.append(layer)
    for key, part in parts.items():
        for layer in part.layers:
            for source in layer.inputs:
                source_key = parts_of.get(source)
                if source_key is None or source_key == key:
                    continue
                if source_key not in part.sources:
                    part.sources.append(source_key)
                if key not in parts[source_key].targets:
                    parts[source_key].targets.append(key)
    return list(parts.values())


# --- how a part is described -----------------------------------------------------------------

def _shape_text(shape):
    if shape is None:
        return "?"
    return "x".join("?" if dim is None else str(dim) for dim in tuple(shape)[1:]) or "scalar"


def _pair(value):
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


def _conv_text(layer):
    kernel = _pair(layer.config.get("kernel_size", 1))
    strides = _pair(layer.config.get("strides", 1))
    text = f"{kernel[0]}x{kernel[1]} conv"
    return text + (f" /{strides[0]}" if max(strides) > 1 else "")


def _adapter_text(layers, suffix):
    convs = [layer for layer in layers if layer.class_name == "Conv2D" and layer.name.endswith(suffix)]
    if not convs:
        return None
    series = any(layer.name.endswith(suffix + "_bn") for layer in layers)
    return f"{len(convs)} {'series' if series else 'parallel'} adapter{'s' if len(convs) > 1 else ''}"


def _spatial(shape):
    """Whether ``shape`` is ``(B, H, W, C)`` with a known height."""
    return shape is not None and len(shape) == 4 and shape[1] is not None


def _unit_kind(part):
    """``("pre-act basic, stride 2, dropout 0.3", "projection shortcut (1x1 conv /2)")`` for a unit."""
    rest = {layer: _UNIT.match(layer.name).group("rest") for layer in part.layers}
    main = [layer for layer in part.layers if layer.class_name == "Conv2D" and re.fullmatch(r"conv\d+", rest[layer])]
    shortcut = [layer for layer in part.layers if rest[layer].startswith("shortcut") and "adapter" not in rest[layer]]
    kernels = [_pair(layer.config.get("kernel_size", 1))[0] for layer in main]
    strides = max([_pair(layer.config.get("strides", 1))[0] for layer in main] or [1])
    if kernels and all(kernel == 3 for kernel in kernels) and len(kernels) == 2:
        body = "basic"
    elif kernels == [1, 3, 1]:
        widths = "-".join(str(layer.config.get("filters")) for layer in main)
        body = f"bottleneck ({widths})"
    else:
        body = "convs " + "-".join(f"{kernel}x{kernel}" for kernel in kernels)
    first = next((layer for layer in part.layers if layer.class_name != "ZeroPadding2D"), None)
    if first is not None and first.class_name.endswith("BatchNormalization"):
        body = "pre-act " + body
    elif first is not None and first.class_name == "Conv2D":
        body = "post-act " + body
        if part.layers[-1].class_name != "ReLU":
            body += " without the closing ReLU"
    words = [body]
    in_shape, out_shape = part.input_shape(), part.output_shape()
    if strides > 1:
        words.append(f"stride {strides}")
    elif _spatial(in_shape) and _spatial(out_shape) and out_shape[1] < in_shape[1]:
        words.append(f"stride {in_shape[1] // out_shape[1]}")
    for layer in part.layers:
        if layer.class_name == "Dropout":
            words.append(f"dropout {layer.config.get('rate', 0):g}")
    adapters = _adapter_text(part.layers, "_adapter")
    if adapters:
        words.append(adapters)

    if not shortcut:
        shortcut_text = "identity shortcut"
    elif any(layer.parameters for layer in shortcut):
        reduction = in_shape[1] // out_shape[1] if _spatial(in_shape) and _spatial(out_shape) else 1
        kernels = [_pair(layer.config.get("kernel_size", 1)) for layer in shortcut if layer.class_name == "Conv2D"]
        convs = ", ".join(f"{kernel[0]}x{kernel[1]} conv" for kernel in kernels) + (
            f" /{reduction}" if reduction > 1 else "")
        extra = " + BN" if any(layer.class_name.endswith("BatchNormalization") for layer in shortcut) else ""
        shortcut_text = f"projection shortcut ({convs}{extra})"
    else:
        steps = []
        if any(layer.class_name == "AveragePooling2D" for layer in shortcut):
            steps.append("avg pool")
        if any(rest[layer].endswith("pad") for layer in shortcut):
            steps.append("zero channels")
        shortcut_text = f"parameter-free shortcut ({' + '.join(steps) or 'reshape'})"
    return ", ".join(words), shortcut_text


def _sequence_text(part):
    """The layers of a non-unit part as a short sequence: ``3x3 conv, BN, ReLU``."""
    words = []
    for layer in part.layers:
        name, kind = layer.name, layer.class_name
        if "_adapter" in name or kind in ("InputLayer", "ZeroPadding2D"):
            continue
        if kind == "Conv2D":
            word = _conv_text(layer)
        elif kind.endswith("BatchNormalization"):
            word = "BN"
        elif kind == "ReLU" or kind == "Activation":
            word = "ReLU" if kind == "ReLU" else str(layer.config.get("activation"))
        elif kind == "GlobalAveragePooling2D":
            word = "global avg pool"
        elif kind == "GlobalMaxPooling2D":
            word = "global max pool"
        elif kind == "Dense":
            activation = layer.config.get("activation")
            word = f"dense {layer.config.get('units')}" + (f", {activation}" if activation not in (None, "linear")
                                                           else "")
        elif kind == "Dropout":
            word = f"dropout {layer.config.get('rate', 0):g}"
        elif kind == "Add":
            word = "add"
        else:
            word = kind
        words.append(word)
    adapters = _adapter_text(part.layers, "_adapter")
    if adapters:
        words.append(adapters)
    return ", ".join(words)


def _shapes_text(part):
    inputs = [shape for _, shape in part.external_inputs()]
    if part.kind == "merge" and len(inputs) > 1:
        return " + ".join(_shape_text(shape) for shape in inputs) + f" -> {_shape_text(part.output_shape())}"
    return f"{_shape_text(part.input_shape())} -> {_shape_text(part.output_shape())}"


def _html(lines, title=None):
    """An HTML-like Graphviz label: optional bold title, then plain lines."""
    rows = ([f"<b>{html.escape(title)}</b>"] if title else []) + [html.escape(line) for line in lines if line]
    return "<" + ("<br/>".join(rows) or " ") + ">"


def _parameters_text(count):
    return f"{count:,} param{'s' if count != 1 else ''}"


# --- the graph -------------------------------------------------------------------------------

_FONT = "Helvetica"


def _runs(parts):
    """The parts to draw as nodes: single parts, and runs of identical units as lists."""
    nodes, signatures = [], {}
    for part in parts:
        previous = nodes[-1] if nodes else None
        last = previous[-1] if isinstance(previous, list) else previous
        if (part.kind == "unit" and last is not None and last.kind == "unit" and last.group == part.group
                and part.index == last.index + 1 and _is_identity(part) and _is_identity(last)
                and part.sources == [last.key] and last.targets == [part.key]):
            signatures.setdefault(last.key, last.signature())
            signatures[part.key] = part.signature()
            if signatures[part.key] == signatures[last.key]:
                if isinstance(previous, list):
                    previous.append(part)
                else:
                    nodes[-1] = [last, part]
                continue
        nodes.append(part)
    return nodes


def _is_identity(part):
    return _unit_kind(part)[1] == "identity shortcut"


def _node_label(run, show_shapes, show_layer_names):
    """The label and extra Graphviz attributes of the node drawing ``run`` (a list of parts)."""
    first, last = run[0], run[-1]
    count = sum(part.parameters for part in run)
    parameters = _parameters_text(count) if count or first.kind == "unit" else ""
    attributes = {}
    if first.kind == "unit":
        title = first.key
        lines = list(_unit_kind(first))
        if len(run) > 1:
            title = f"{first.group} blocks {first.index}-{last.index} (x{len(run)} identical)"
            parameters += f" ({first.parameters:,} each)"
            attributes.update(fillcolor="#e8eef8", peripheries="2")
    else:
        title = first.key
        if first.kind == "pooling" and not any(layer.class_name in _POOLING for layer in first.layers):
            title = "final"
        lines = [_sequence_text(first)]
        attributes.update(fillcolor="#f4f4f4")
        if first.kind == "merge":
            attributes.update(shape="ellipse", style="filled")
        elif first.kind == "path":
            attributes.update(style="rounded,dashed")
    if show_shapes:
        lines.append(_shapes_text(first) if len(run) == 1 else
                     f"{_shape_text(first.input_shape())} -> {_shape_text(last.output_shape())}")
    lines.append(parameters)
    if not show_layer_names:
        title = f"x{len(run)} identical" if len(run) > 1 else None
    return _html(lines, title), attributes


def _block_graph(model, show_shapes, show_layer_names, dpi, rankdir):
    """The pydot graph of ``model``'s residual units (see `plot_architecture`)."""
    import pydot  # imported here: the command line loads this module for its error class only

    parts = _read_parts(model)
    by_key = {part.key: part for part in parts}
    graph = pydot.Dot(graph_type="digraph", rankdir=rankdir, dpi=str(dpi), fontname=_FONT, fontsize="14",
                      nodesep="0.3", ranksep="0.35", newrank="true", label=model.name, labelloc="t")
    graph.set_node_defaults(shape="box", style="rounded,filled", fillcolor="white", fontname=_FONT, fontsize="14",
                            margin="0.15,0.06")
    graph.set_edge_defaults(fontname=_FONT, fontsize="12", arrowsize="0.7")

    # A long shortcut (one source, one target, neither of them another shortcut) is drawn as an edge.
    as_edges = [part for part in parts if part.kind == "path" and len(part.sources) == 1 and len(part.targets) == 1
                and by_key[part.sources[0]].kind != "path" and by_key[part.targets[0]].kind != "path"]
    drawn = [part for part in parts if part.kind != "path"] + [
        part for part in parts if part.kind == "path" and part not in as_edges]

    clusters, node_of = {}, {}
    for position, item in enumerate(_runs(drawn)):
        run = item if isinstance(item, list) else [item]
        node_id = f"n{position}"
        for part in run:
            node_of[part.key] = node_id
        label, attributes = _node_label(run, show_shapes, show_layer_names)
        node = pydot.Node(node_id, label=label, **attributes)
        group = run[0].group if run[0].kind != "path" else None
        if group is None:
            graph.add_node(node)
            continue
        if group not in clusters:
            clusters[group] = pydot.Cluster(group, label=group, style="rounded,dashed", color="#888888",
                                            fontname=_FONT, fontsize="14", labeljust="l")
            graph.add_subgraph(clusters[group])
        clusters[group].add_node(node)

    edges = set()
    for part in parts:
        if part in as_edges:
            continue
        for target in part.targets:
            if by_key[target] in as_edges:
                continue
            edge = (node_of[part.key], node_of[target])
            if edge[0] != edge[1] and edge not in edges:
                edges.add(edge)
                style = {"style": "dashed"} if "path" in (part.kind, by_key[target].kind) else {}
                graph.add_edge(pydot.Edge(*edge, **style))
    for part in as_edges:
        lines = [_sequence_text(part)] + ([_shapes_text(part)] if show_shapes else [])
        lines.append(_parameters_text(part.parameters))
        graph.add_edge(pydot.Edge(node_of[part.sources[0]], node_of[part.targets[0]],
                                  label=_html(lines, part.key if show_layer_names else None), style="dashed",
                                  color="#3060a0", fontcolor="#3060a0", constraint="false"))
    return graph
