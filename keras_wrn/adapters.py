"""Multi-domain networks with residual adapters (Rebuffi et al., NIPS 2017 / CVPR 2018).

One network, many visual domains: the 3x3 convolutions are shared by every
domain and frozen; each domain owns its BatchNorms (scale, offset and moving
statistics), its adapters and its classifier.  `MultiDomainNetwork` creates the
shared layers once and gives one compiled Functional `keras.Model` per domain,
built from the *same* shared Layer objects, so shared weights exist once in
memory and training one domain cannot touch another's parameters.

Architecture: the ResNet-26 of the reference code (seed 001, paper-numbers.md):
stem 3x3 conv to 32 + BN (no ReLU); three stages of 4 post-activation basic
blocks, widths 64/128/256, each starting with stride 2; the downsampling
shortcut is 2x2 average pooling with zero channels appended (no parameters);
final BN-ReLU, global average pooling, linear head.  Each 3x3 conv is a
"conv unit"::

    normal:    y = BN_d(conv3x3(x))
    series:    z = conv3x3(x);  y = BN_d(z + conv1x1_d(BN'_d(z)))
    parallel:  y = BN_d(conv3x3(x) + conv1x1_d(x))      (1x1 with the 3x3's stride)

Layer names (``stage2_block1_conv1``, ``..._bn``, ``..._adapter``,
``..._adapter_bn``, ``final_bn``, ``predictions``) are the same in every
domain's model; each domain model holds only its own domain layers.
"""

import fnmatch

import keras
from keras import layers

from keras_wrn.blocks import (
    BN_EPSILON,
    BN_MOMENTUM,
    CONV_INITIALIZER,
    ChannelZeroPad,
    BatchNormalization,
    SpatialSubsample,
)

__all__ = ["ADAPTERS", "MultiDomainNetwork", "resnet26", "wrn_ram", "RESNET26"]

ADAPTERS = (None, "series", "parallel")
RESNET26 = dict(stem=32, widths=(64, 128, 256), blocks=(4, 4, 4), strides=(2, 2, 2))
ADAPTER_L2 = 1e-4  # the reference recipe's default decay on adapters
DEFAULT_L2 = 5e-4  # classifier (and BN) decay


class _LayerStore:
    """Layers by name, created on first use: the shared bank or one domain's bank."""

    def __init__(self, trainable=True):
        self.layers = {}
        self.trainable = trainable

    def get(self, name, factory):
        if name not in self.layers:
            layer = factory(name)
            layer.trainable = self.trainable
            self.layers[name] = layer
        return self.layers[name]


def _conv(filters, kernel, strides):
    padding = "valid" if strides > 1 and kernel > 1 else "same"
    return lambda name: layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                                      kernel_initializer=CONV_INITIALIZER, name=name)


def _pointwise(x, store, name, filters, strides):
    """A 1x1 conv with stride, as subsampling + a stride-1 1x1 conv (see `SpatialSubsample`)."""
    if strides > 1:
        x = SpatialSubsample(strides, name=f"{name}_subsample")(x)
    return store.get(name, _conv(filters, 1, 1))(x)


def _bn(name):
    return BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def _conv_unit(x, shared, domain, name, filters, strides, adapter, with_adapter):
    """3x3 conv (shared) with the domain's adapter and BN; see the module doc."""
    y = _adapted_conv(x, shared, domain, name, filters, 3, strides, adapter, with_adapter)
    return domain.get(f"{name}_bn", _bn)(y)


def _basic_block(x, shared, domain, name, filters, strides, adapter, where):
    y = _conv_unit(x, shared, domain, f"{name}_conv1", filters, strides, adapter, where(f"{name}_conv1"))
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv_unit(y, shared, domain, f"{name}_conv2", filters, 1, adapter, where(f"{name}_conv2"))
    shortcut = x
    if strides > 1 or x.shape[-1] != filters:
        shortcut = layers.AveragePooling2D(strides, name=f"{name}_shortcut_pool")(x) if strides > 1 else x
        shortcut = ChannelZeroPad(filters - x.shape[-1], name=f"{name}_shortcut_pad")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def _spec(width_factor):
    if not isinstance(width_factor, (int, float)) or isinstance(width_factor, bool) or width_factor <= 0:
        raise ValueError(f"width_factor={width_factor!r} is not allowed; expected a number > 0.")
    return dict(RESNET26, architecture="resnet26", stem=int(RESNET26["stem"] * width_factor),
                widths=tuple(int(w * width_factor) for w in RESNET26["widths"]))


def _wrn_spec(depth, width):
    if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(f"wrn_ram: depth={depth!r} is not allowed; expected 6n + 4 (10, 16, 22, 28, ...).")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"wrn_ram: width={width!r} is not allowed; expected an integer >= 1.")
    return dict(architecture="wrn", depth=depth, width=width)


def _adapted_conv(x, shared, domain, name, filters, kernel, strides, adapter, with_adapter):
    """A shared conv followed by the domain's adapter (no BN: WRN units are pre-activation)."""
    inputs = x
    if kernel == 1:
        y = _pointwise(x, shared, name, filters, strides)
    else:
        if strides > 1:
            x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        y = shared.get(name, _conv(filters, kernel, strides))(x)
    if adapter == "parallel" and with_adapter:
        side = _pointwise(inputs, domain, f"{name}_adapter", filters, strides)
        y = layers.Add(name=f"{name}_adapter_add")([y, side])
    elif adapter == "series" and with_adapter:
        side = domain.get(f"{name}_adapter_bn", _bn)(y)
        side = domain.get(f"{name}_adapter", _conv(filters, 1, 1))(side)
        y = layers.Add(name=f"{name}_adapter_add")([y, side])
    return y


def _wrn_graph(inputs, shared, domain, classes, adapter, where, spec):
    """WRN-d-k (pre-activation, as `create_wide_residual_network`) with an adapter after every conv.

    Seed 000's WRN-RAM: adapters follow the stem, every 3x3 conv and every 1x1
    shortcut projection; BNs and the head are per domain.
    """
    n = (spec["depth"] - 4) // 6
    x = _adapted_conv(inputs, shared, domain, "stem_conv", 16, 3, 1, adapter, where("stem_conv"))
    for group, (filters, stride) in enumerate(zip((16, 32, 64), (1, 2, 2)), start=1):
        filters *= spec["width"]
        for block in range(1, n + 1):
            name, strides = f"group{group}_block{block}", stride if block == 1 else 1
            pre = layers.ReLU(name=f"{name}_relu1")(domain.get(f"{name}_bn1", _bn)(x))
            y = _adapted_conv(pre, shared, domain, f"{name}_conv1", filters, 3, strides, adapter, where(f"{name}_conv1"))
            y = layers.ReLU(name=f"{name}_relu2")(domain.get(f"{name}_bn2", _bn)(y))
            y = _adapted_conv(y, shared, domain, f"{name}_conv2", filters, 3, 1, adapter, where(f"{name}_conv2"))
            shortcut = x
            if strides > 1 or x.shape[-1] != filters:
                shortcut = _adapted_conv(pre, shared, domain, f"{name}_shortcut_conv", filters, 1, strides, adapter,
                                         where(f"{name}_shortcut_conv"))
            x = layers.Add(name=f"{name}_add")([y, shortcut])
    x = layers.ReLU(name="final_relu")(domain.get("final_bn", _bn)(x))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return domain.get("predictions", lambda name: layers.Dense(classes, name=name))(x)


def _graph(inputs, shared, domain, classes, adapter, where, spec):
    builder = _wrn_graph if spec["architecture"] == "wrn" else _resnet26_graph
    return builder(inputs, shared, domain, classes, adapter, where, spec)


def _resnet26_graph(inputs, shared, domain, classes, adapter, where, spec=RESNET26):
    x = _conv_unit(inputs, shared, domain, "stem_conv", spec["stem"], 1, adapter, where("stem_conv"))
    for stage, (filters, count, stride) in enumerate(zip(spec["widths"], spec["blocks"], spec["strides"]), start=1):
        for block in range(1, count + 1):
            x = _basic_block(x, shared, domain, f"stage{stage}_block{block}", filters,
                             stride if block == 1 else 1, adapter, where)
    x = domain.get("final_bn", _bn)(x)
    x = layers.ReLU(name="final_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return domain.get("predictions", lambda name: layers.Dense(classes, name=name))(x)


def _where(positions):
    """Which conv units get adapters: "all", or shell patterns over unit names."""
    if positions == "all":
        return lambda name: True
    patterns = [positions] if isinstance(positions, str) else list(positions)
    return lambda name: any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _check(adapter, classes, input_shape, caller):
    if adapter not in ADAPTERS:
        raise ValueError(f"{caller}: adapter={adapter!r} is not allowed; expected one of {list(ADAPTERS)}.")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ValueError(f"{caller}: classes={classes!r} is not allowed; expected an integer >= 1.")
    if len(input_shape) != 3 or input_shape[-1] is None or input_shape[0] is not None and input_shape[0] < 8:
        raise ValueError(f"{caller}: input_shape={input_shape!r} is not allowed; expected (H, W, C) with H, W >= 8.")


def _compile(model, learning_rate=0.1):
    from keras_wrn.optimizers import CoupledWeightDecaySGD

    model.compile(
        optimizer=CoupledWeightDecaySGD(learning_rate=learning_rate, momentum=0.9, nesterov=False,
                                        l2={"*adapter*": ADAPTER_L2, "*": DEFAULT_L2}),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def resnet26(classes=10, input_shape=(64, 64, 3), adapter=None, positions="all", width_factor=1.0, compile=True,
             name=None):
    """The reference ResNet-26 as one plain network (every layer its own, all trainable).

    The single-domain form: the source network, and the ``scratch`` / ``finetune``
    modes of the reference code.  Outputs logits.  ``width_factor`` scales every
    width as the reference code's ``factor`` does (1.0: 32 / 64 / 128 / 256).
    """
    classes = 10 if classes is None else classes
    input_shape = (64, 64, 3) if input_shape is None else tuple(input_shape)
    _check(adapter, classes, input_shape, "resnet26")
    inputs = keras.Input(input_shape, name="input")
    outputs = _resnet26_graph(inputs, _LayerStore(), _LayerStore(), classes, adapter, _where(positions),
                              _spec(width_factor))
    model = keras.Model(inputs, outputs, name=name or "resnet26" + (f"_{adapter}" if adapter else ""))
    return _compile(model) if compile else model


class MultiDomainNetwork:
    """A ResNet-26 whose 3x3 convolutions are shared and frozen, with per-domain adapters, BNs and heads.

    >>> net = MultiDomainNetwork(adapter="parallel", domains={"cifar10": 10, "digits": 10})
    >>> net["digits"].fit(...)            # trains digits' adapters, BNs and head only
    >>> net.add_domain("letters", 26)

    Args:
        adapter: ``"parallel"``, ``"series"``, or None (only BNs and heads are
            per domain: the ``bn`` mode).
        domains: ``{name: classes}`` created now, in order.
        input_shape: channels-last, default ``(64, 64, 3)`` (the Decathlon's 64x64 crops).
        positions: ``"all"`` conv units get adapters, or shell patterns over unit
            names such as ``"stage3_*"``.
        width_factor: scales every width (the reference code's ``factor``).
    """

    def __init__(self, adapter="parallel", domains=None, input_shape=(64, 64, 3), positions="all", width_factor=1.0,
                 compile=True, spec=None, train_shared=False):
        self.adapter = adapter
        self.spec = spec or _spec(width_factor)
        self.input_shape = tuple(input_shape)
        self.positions = positions
        self.compile = compile
        _check(adapter, 1, self.input_shape, "MultiDomainNetwork")
        self.shared = _LayerStore(trainable=bool(train_shared))
        self._stores, self._models, self.classes = {}, {}, {}
        for domain, classes in (domains or {}).items():
            self.add_domain(domain, classes)

    def add_domain(self, domain, classes):
        """Create ``domain``'s adapters, BNs and head; returns its compiled model."""
        if not isinstance(domain, str) or not domain:
            raise ValueError(f"add_domain: domain={domain!r} must be a non-empty string.")
        if domain in self._models:
            raise ValueError(f"add_domain: domain {domain!r} exists already (domains: {self.domains}).")
        _check(self.adapter, classes, self.input_shape, "add_domain")
        store = _LayerStore(trainable=True)
        inputs = keras.Input(self.input_shape, name="input")
        outputs = _graph(inputs, self.shared, store, classes, self.adapter, _where(self.positions), self.spec)
        prefix = "resnet26" if self.spec["architecture"] == "resnet26" else "wrn_{depth}_{width}_ram".format(**self.spec)
        model = keras.Model(inputs, outputs, name=f"{prefix}_{domain}")
        self._stores[domain], self._models[domain], self.classes[domain] = store, model, classes
        return _compile(model) if self.compile else model

    @property
    def domains(self):
        return list(self._models)

    def __getitem__(self, domain):
        if domain not in self._models:
            raise KeyError(f"unknown domain {domain!r}; domains: {self.domains}.")
        return self._models[domain]

    def __contains__(self, domain):
        return domain in self._models

    def shared_weights(self):
        return [w for layer in self.shared.layers.values() for w in layer.weights]

    def domain_weights(self, domain):
        self[domain]
        return [w for layer in self._stores[domain].layers.values() for w in layer.weights]

    def load_shared(self, source):
        """Copy the 3x3 convolutions of a plain `resnet26` (the source network) into the shared bank."""
        for name, layer in self.shared.layers.items():
            layer.set_weights(source.get_layer(name).get_weights())

    def merge(self, domain):
        """A plain, adapter-free network computing ``self[domain]``'s function at inference.

        ResNet-26 (series or parallel) gives a plain `resnet26`; WRN-RAM with
        parallel adapters a plain WRN (see `_merge_wrn`).

        Parallel: the 1x1 adapter kernel is added to the 3x3 kernel's centre tap
        (same stride, and the centre tap samples the pixel the 1x1 conv reads).
        Series: ``z + W(a*z + b)`` with the adapter BN's inference affine ``a, b``
        equals ``z (I + diag(a) W) + b W``: the matrix folds into the 3x3 kernel's
        output channels, the constant into the domain BN's moving mean.
        Computed in float64; returns a compiled `resnet26` (``adapter=None``).
        """
        import numpy as np

        if self.spec["architecture"] == "wrn":
            return self._merge_wrn(domain)
        model, store = self[domain], self._stores[domain].layers
        plain = resnet26(self.classes[domain], self.input_shape, adapter=None,
                         width_factor=self.spec["widths"][0] / RESNET26["widths"][0], compile=self.compile,
                         name=f"resnet26_{domain}_merged")
        for name, conv in self.shared.layers.items():
            kernel = np.asarray(conv.kernel.numpy(), np.float64)
            gamma, beta, mean, variance = (np.asarray(v, np.float64) for v in store[f"{name}_bn"].get_weights())
            adapter = store.get(f"{name}_adapter")
            if adapter is not None and self.adapter == "parallel":
                kernel[1, 1] += np.asarray(adapter.kernel.numpy(), np.float64)[0, 0]
            elif adapter is not None and self.adapter == "series":
                side = store[f"{name}_adapter_bn"]
                g, b, m, v = (np.asarray(w, np.float64) for w in side.get_weights())
                scale = g / np.sqrt(v + side.epsilon)
                shift = b - m * scale
                matrix = np.asarray(adapter.kernel.numpy(), np.float64)[0, 0]  # (C, C): in -> out
                kernel = kernel @ (np.eye(len(scale)) + scale[:, None] * matrix)
                mean = mean - shift @ matrix
            plain.get_layer(name).set_weights([kernel.astype(conv.kernel.dtype)])
            plain.get_layer(f"{name}_bn").set_weights([gamma, beta, mean, variance])
        for name in ("final_bn", "predictions"):
            plain.get_layer(name).set_weights(model.get_layer(name).get_weights())
        return plain

    def _merge_wrn(self, domain):
        """WRN-RAM, parallel adapters only: a plain `create_wide_residual_network` (logit head).

        The 1x1 adapter kernel adds to the 3x3 kernel's centre tap (to the 1x1
        projection kernel itself); the domain's pre-activation BNs and head are
        copied.  Series adapters are refused: their constant ``b W`` would need a
        bias, and the pre-activation WRN's convolutions have none.
        """
        import numpy as np

        from keras_wrn.models import create_wide_residual_network

        if self.adapter == "series":
            raise ValueError("merge: a WRN-RAM with series adapters cannot be merged: the adapter BN's shift "
                             "through the 1x1 conv is a constant per channel, and the pre-activation WRN's "
                             "convolutions have no bias to hold it; use adapter='parallel' (or the ResNet-26).")
        model, store = self[domain], self._stores[domain].layers
        plain = create_wide_residual_network(depth=self.spec["depth"], width=self.spec["width"],
                                             classes=self.classes[domain], input_shape=self.input_shape,
                                             classifier_activation=None, compile=self.compile)
        for name, conv in self.shared.layers.items():
            kernel = np.asarray(conv.kernel.numpy(), np.float64)
            adapter = store.get(f"{name}_adapter")
            if adapter is not None:
                centre = kernel.shape[0] // 2
                kernel[centre, centre] += np.asarray(adapter.kernel.numpy(), np.float64)[0, 0]
            plain.get_layer(name).set_weights([kernel.astype(conv.kernel.dtype)])
        for name, layer in store.items():
            if "adapter" not in name:
                plain.get_layer(name).set_weights(layer.get_weights())
        return plain

    def fingerprint(self):
        """sha256 of the shared backbone: architecture, layer names, shapes and weight bytes."""
        import hashlib
        import json

        import numpy as np

        digest = hashlib.sha256(json.dumps(dict(self.spec, input_channels=self.input_shape[-1]),
                                           sort_keys=True).encode())
        for name in sorted(self.shared.layers):
            for weight in self.shared.layers[name].weights:
                values = np.ascontiguousarray(np.asarray(weight.numpy(), np.float32))
                digest.update(f"{name}:{values.shape}".encode())
                digest.update(values.tobytes())
        return digest.hexdigest()

    def save_pack(self, domain, path, class_names=None, preprocessing=None):
        """Write ``domain``'s own parameters (adapters, BNs with moving statistics, head) to ``path``.

        The pack (HDF5) also records the adapter kind, classes, class names,
        preprocessing and the shared backbone's `fingerprint`; written atomically.
        """
        import json

        import h5py

        from keras_wrn.training import _atomic_write

        self[domain]
        if class_names is not None and len(class_names) != self.classes[domain]:
            raise ValueError(f"save_pack: {len(class_names)} class_names for {self.classes[domain]} classes.")
        meta = dict(format="keras_wrn-adapter-pack-1", domain=domain, adapter=self.adapter,
                    classes=self.classes[domain], class_names=class_names, preprocessing=preprocessing,
                    input_shape=list(self.input_shape), positions=self.positions, spec=self.spec,
                    backbone_fingerprint=self.fingerprint())

        def write(temporary):
            with h5py.File(temporary, "w") as handle:
                handle.attrs["meta"] = json.dumps(meta)
                for name, layer in self._stores[domain].layers.items():
                    for weight in layer.weights:
                        handle.create_dataset(f"{name}/{weight.name}", data=weight.numpy())

        _atomic_write(path, write)
        return meta

    def load_pack(self, path, domain=None):
        """Add the domain stored in the pack ``path`` (refused for another backbone); returns its model."""
        import json

        import h5py

        path = str(path)
        try:
            with h5py.File(path, "r") as handle:
                meta = json.loads(handle.attrs["meta"])
                arrays = {}
                handle.visititems(lambda key, item: arrays.__setitem__(key, item[()]) if isinstance(item, h5py.Dataset) else None)
        except (OSError, KeyError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not an adapter pack ({error}).") from None
        if meta.get("format") != "keras_wrn-adapter-pack-1":
            raise ValueError(f"{path}: not an adapter pack (format {meta.get('format')!r}).")
        for key, ours in (("adapter", self.adapter), ("spec", self.spec), ("positions", self.positions),
                          ("input_shape", list(self.input_shape))):
            stored = meta[key] if key != "spec" else {k: (list(v) if isinstance(v, tuple) else v) for k, v in meta[key].items()}
            mine = {k: (list(v) if isinstance(v, tuple) else v) for k, v in ours.items()} if key == "spec" else ours
            if stored != mine:
                raise ValueError(f"{path}: the pack was built with {key}={meta[key]!r}; this network has {ours!r}.")
        if meta["backbone_fingerprint"] != self.fingerprint():
            raise ValueError(f"{path}: the pack was built for backbone {meta['backbone_fingerprint'][:16]}..., this "
                             f"network's shared weights are {self.fingerprint()[:16]}...; load the matching backbone.")
        domain = domain or meta["domain"]
        model = self.add_domain(domain, meta["classes"])
        expected = {f"{name}/{w.name}": w for name, layer in self._stores[domain].layers.items() for w in layer.weights}
        if set(expected) != set(arrays):
            del self._stores[domain], self._models[domain], self.classes[domain]
            raise ValueError(f"{path}: holds {sorted(set(arrays) ^ set(expected))[:4]}..., not this network's "
                             "domain layers.")
        for key, weight in expected.items():
            weight.assign(arrays[key])
        self.pack_meta = getattr(self, "pack_meta", {})
        self.pack_meta[domain] = meta
        return model

    def budget(self):
        """Shared vs per-domain parameters and bytes, and the multiplier against separate networks.

        ``multiplier`` is (shared + all domains) / one plain network: the
        "params" column of the Decathlon table (about 2x for 10 domains with
        adapters, 10x for ten separate networks).
        """
        def count(weights):
            return int(sum(_size(w) for w in weights))

        shared = count(self.shared_weights())
        per_domain = {d: count(self.domain_weights(d)) for d in self.domains}
        plain = shared + (sum(per_domain.values()) / len(per_domain) if per_domain else 0)
        adapters = {d: count([w for n, layer in self._stores[d].layers.items() if "adapter" in n for w in layer.weights])
                     for d in self.domains}
        total = shared + sum(per_domain.values())
        return dict(shared=shared, per_domain=per_domain, adapters=adapters, total=total, bytes=4 * total,
                    separate_networks=len(per_domain) * plain,
                    multiplier=total / plain if plain else None,
                    domain_fraction={d: n / (shared + n) for d, n in per_domain.items()})


def _size(weight):
    size = 1
    for dim in weight.shape:
        size *= int(dim)
    return size


def wrn_ram(input_shape=(32, 32, 3), nb_classes=None, N=None, k=None, *, classes=None, depth=None, width=None,
            adapter="series", domains=None, positions="all", train_shared=False, compile=True):
    """WRN-d-k with residual adapter modules (seed 000's WRN-RAM; default WRN-28-4-RAM).

    ``wrn_ram((32, 32, 3), nb_classes=10, N=4, k=4)`` returns one compiled model
    (its convolutions frozen unless ``train_shared``); ``domains={name: classes}``
    returns a `MultiDomainNetwork` sharing the convolutions.  The seed's names
    are accepted: ``N`` blocks per group (depth = 6N + 4), ``k`` (width),
    ``nb_classes``.
    """
    for alias, value, target, current in (("N", N, "depth", depth), ("k", k, "width", width),
                                          ("nb_classes", nb_classes, "classes", classes)):
        if value is not None and current is not None:
            raise ValueError(f"wrn_ram: got both {alias}={value!r} and {target}={current!r}; pass one.")
    depth = depth if depth is not None else (6 * N + 4 if N is not None else 28)
    width = width if width is not None else (k if k is not None else 4)
    classes = classes if classes is not None else (nb_classes if nb_classes is not None else 10)
    net = MultiDomainNetwork(adapter=adapter, input_shape=input_shape, positions=positions, compile=compile,
                             spec=_wrn_spec(depth, width), train_shared=train_shared)
    if domains is None:
        return net.add_domain("default", classes)
    for name, count in domains.items():
        net.add_domain(name, count)
    return net
