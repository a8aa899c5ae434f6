"""Residual units shared by every family, as plain functions on Keras tensors.

Each function takes a channels-last tensor ``x`` of shape ``(batch, H, W, C)``
and a ``name`` prefix, and names every layer it creates from that prefix
(``group2_block3_conv1``), so the same configuration always yields the same
layer names: weight files, summaries and plots read like the papers' figures.

Conventions taken from the authors' Torch/PyTorch code, kept in every block:

- 3x3 convolutions have no bias and He-normal initialisation.
- A strided 3x3 convolution pads one pixel on every side, as Torch does
  (``ZeroPadding2D(1)`` + ``"valid"``).  Keras' ``"same"`` pads only the
  bottom/right for stride 2 on even inputs, which would sample a shifted grid
  and make converted Torch weights give other outputs.
- BatchNormalization uses Torch's defaults: momentum 0.1 in Torch's sense
  (0.9 in Keras' sense) and epsilon 1e-5, as `BatchNormalization`
  (Keras' layer, with TensorFlow's fused kernel for its training step).
"""

import fnmatch
import os

import keras
from keras import layers, ops

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
CONV_INITIALIZER = "he_normal"
# Activation dtypes TensorFlow's fused BatchNorm kernel takes (with float32 scale, offset, statistics).
FUSED_DTYPES = ("float32", "bfloat16", "float16")
# When `BatchNormalization` folds itself into the convolution before it at inference.
FOLDS = ("never", "below-float32", "always")
DEFAULT_FOLD = "below-float32"  # what the builders use unless a residual Add follows or the conv has other readers


def conv_layer(filters, kernel_size, strides=1):
    """A factory ``name -> Conv2D``: bias-free, He-normal, ``"same"`` padding unless strided.

    A strided KxK convolution (K > 1) gets ``"valid"`` padding: its caller pads
    first (`conv2d`), one pixel on every side as Torch does.
    """
    padding = "valid" if strides > 1 and kernel_size > 1 else "same"

    def make(name):
        return layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                             kernel_initializer=CONV_INITIALIZER, name=name)

    return make


def conv2d(x, filters, kernel_size, strides, name):
    """Bias-free KxK convolution with Torch's symmetric padding.

    Shapes: ``(B, H, W, C) -> (B, ceil(H / strides), ceil(W / strides), filters)``.
    """
    if strides > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    return conv_layer(filters, kernel_size, strides)(name)(x)


@keras.saving.register_keras_serializable(package="keras_wrn")
class BatchNormalization(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that runs as one fused kernel on TensorFlow.

    It keeps Keras' class name on purpose: Keras derives the paths inside a
    ``.weights.h5`` file from the class name, so files written by Keras' own
    layer (every release, every converter output) load unchanged, and files
    written here load into models built from ``keras.layers.BatchNormalization``.

    Keras 3 normalises with separate moment, rsqrt, multiply and add ops (and as
    many again for the gradient); TensorFlow's ``FusedBatchNormV3`` (oneDNN on
    CPU) does the forward pass in one kernel and the backward pass in another,
    and at inference Grappler folds it, with the ReLU after it, into the
    convolution before it.  Same weights, same names, same moving-statistics
    update as Keras (the biased batch variance: the fused kernel's Bessel
    correction is undone); outputs equal Keras' to float32 rounding.
    Under a mixed precision policy (`keras_wrn.precision`) the kernel takes the
    bfloat16/float16 activations as they are and keeps scale, offset and the
    statistics in float32 (Keras' own layer casts the activations to float32 and
    back around separate ops, see the README's precision section).
    Other backends, masks, synchronised (multi-replica) batch statistics,
    renormalisation and non-4D inputs use Keras' own path, and so
    does everything when the environment variable ``KERAS_WRN_FUSED_BATCH_NORM``
    is ``0`` at model tracing (to reproduce Keras' arithmetic bit for bit, e.g. to
    compare with a multi-replica run).

    ``fold_into_conv`` (one of `FOLDS`; this package's builders set it, "never"
    where the convolution's output has a second consumer) folds the
    normalisation into the convolution whose output it reads, at inference in a
    traced TensorFlow function (``predict``, ``evaluate``, a ``tf.function``
    call with ``training=False``): the convolution is recomputed with the kernel
    scaled per output channel, ``kernel * gamma / sqrt(var + eps)``, plus the
    bias ``beta - mean * gamma / sqrt(var + eps)``, both formed in float32 from
    the variables and then cast to the compute dtype; the unscaled convolution,
    left without consumers, is pruned.  Grappler folds a FusedBatchNorm into the
    convolution only in float32, but a BiasAdd it fuses, with the ReLU or the
    residual Add + ReLU after it, into one oneDNN convolution at every precision
    (``benchmarks/fast_paths.md``: ResNet-26 inference 1.41x in bfloat16 and
    1.06x in float32, WRN-16-1 / WRN-16-4 1.08x / 1.07x in bfloat16).  In
    float32, where Grappler's own fold covers BN + ReLU, it pays only where a
    residual Add + ReLU follows (``"always"``); elsewhere
    (``"below-float32"``, `DEFAULT_FOLD`) scaling the kernel on every call
    would cost 1-2% for nothing.  The function is the same to rounding: the
    fold only moves where bfloat16 rounds.  Eager calls, training, an input
    that is not a plain NHWC ``Conv2D`` output and other backends normalise as
    above.
    """

    def __init__(self, *args, fold_into_conv="never", **kwargs):
        super().__init__(*args, **kwargs)
        if fold_into_conv not in FOLDS:
            raise ValueError(f"BatchNormalization: fold_into_conv={fold_into_conv!r}; expected one of {FOLDS}.")
        self.fold_into_conv = fold_into_conv

    def get_config(self):
        return dict(super().get_config(), fold_into_conv=self.fold_into_conv)

    def _fusable(self, inputs, batch_statistics, mask):
        return (os.environ.get("KERAS_WRN_FUSED_BATCH_NORM", "1") != "0" and mask is None and not self.renorm
                and not (batch_statistics and self.synchronized)
                and keras.backend.backend() == "tensorflow" and len(inputs.shape) == 4
                and self.axis in (-1, 3) and keras.backend.standardize_dtype(inputs.dtype) in FUSED_DTYPES
                and self.scale and self.center)

    def call(self, inputs, training=None, mask=None):
        batch_statistics = bool(training) and self.trainable  # Keras: a frozen BatchNorm uses its moving statistics
        if not self._fusable(inputs, batch_statistics, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # deferred: only the TensorFlow backend uses it

        if not training and (self.fold_into_conv == "always" or (
                self.fold_into_conv == "below-float32" and keras.backend.standardize_dtype(inputs.dtype) != "float32")):
            folded = self._folded_convolution(inputs)
            if folded is not None:
                return folded
        if not batch_statistics:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, data_format="NHWC", is_training=False)
            return outputs
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
        count = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], variance.dtype)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)  # back to the biased estimate Keras keeps
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs

    def _folded_convolution(self, inputs):
        """The inference output as one convolution with a scaled kernel plus a bias, or None where
        ``inputs`` is not the sole output of a traced NHWC ``Conv2D`` (see the class docstring)."""
        import tensorflow as tf  # deferred: only the TensorFlow backend calls this

        if tf.executing_eagerly() or not hasattr(inputs, "op") or inputs.op.type != "Conv2D" or inputs.consumers():
            return None
        conv = inputs.op
        if conv.get_attr("data_format") != b"NHWC" or conv.get_attr("padding") not in (b"SAME", b"VALID"):
            return None
        images, kernel = conv.inputs
        if kernel.op.type == "Cast":  # a mixed policy's cast of the float32 kernel variable
            kernel = kernel.op.inputs[0]
        if kernel.dtype != tf.float32:
            return None
        scale = self.gamma * tf.math.rsqrt(self.moving_variance + self.epsilon)
        bias = self.beta - self.moving_mean * scale
        outputs = tf.nn.conv2d(images, tf.cast(kernel * scale, inputs.dtype), strides=conv.get_attr("strides"),
                               padding=conv.get_attr("padding").decode(), dilations=conv.get_attr("dilations"),
                               data_format="NHWC")
        return tf.nn.bias_add(outputs, tf.cast(bias, inputs.dtype))


def batch_norm_layer(name, fold_into_conv=DEFAULT_FOLD):
    """A `BatchNormalization` with Torch's momentum and epsilon, named ``name``.

    ``fold_into_conv``: see `BatchNormalization`; "always" where a residual
    addition follows, "never" where the convolution before it has another
    consumer (it would be computed twice).
    """
    return BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name, fold_into_conv=fold_into_conv)


def batch_norm(x, name, fold_into_conv=DEFAULT_FOLD):
    """BatchNormalization over the channel axis with Torch's momentum and epsilon."""
    return batch_norm_layer(name, fold_into_conv)(x)


class LayerBank:
    """Layers by name, each created on first use and returned again afterwards.

    A multi-domain network keeps one bank of shared layers (the convolutions)
    and one bank per domain (BNs, adapters, head); every domain's Functional
    model is built from the same shared Layer objects.  ``trainable`` is set on
    each layer the bank creates.
    """

    def __init__(self, trainable=True):
        self.trainable = bool(trainable)
        self._layers = {}

    def get(self, name, factory):
        """The layer ``name``, made by ``factory(name)`` if the bank does not hold it yet."""
        if name not in self._layers:
            layer = factory(name)
            layer.trainable = self.trainable
            self._layers[name] = layer
        return self._layers[name]

    @property
    def layers(self):
        """``{name: layer}`` in creation order (a copy)."""
        return dict(self._layers)

    @property
    def weights(self):
        return [weight for layer in self._layers.values() for weight in layer.weights]


class PlainUnits:
    """How a block makes its layers in an ordinary network: every layer new, named as asked."""

    adapter = None

    def layer(self, name, factory):
        return factory(name)

    def conv(self, x, filters, kernel_size, strides, name):
        return conv2d(x, filters, kernel_size, strides, name)

    def bn(self, x, name, fold_into_conv=DEFAULT_FOLD):
        return batch_norm(x, name, fold_into_conv)


PLAIN = PlainUnits()
ADAPTERS = (None, "series", "parallel")


class AdapterUnits:
    """The adapter-aware conv unit (Rebuffi et al., NIPS 2017 / CVPR 2018).

    Convolutions come from the ``shared`` bank; BNs, adapters and every other
    layer with weights from the ``domain`` bank.  After each convolution that
    ``positions`` selects (``"all"``, or shell patterns over conv names such as
    ``"stage3_*"``), a per-domain 1x1 residual adapter is added::

        series:    y = z + conv1x1_d(BN'_d(z)),   z = conv(x)
        parallel:  y = conv(x) + conv1x1_d(x)     (the 1x1 with the conv's stride)
        None:      y = conv(x)                    (only BNs and head per domain)

    The adapter is named ``{name}_adapter`` (its BN ``{name}_adapter_bn``).  A
    strided 1x1 convolution is computed as `SpatialSubsample` + a stride-1 1x1:
    TensorFlow 2.21's oneDNN kernels crash or corrupt memory while training
    strided 1x1 convolutions on fewer than 16 channels.
    """

    def __init__(self, shared, domain, adapter=None, positions="all"):
        if adapter not in ADAPTERS:
            raise ValueError(f"adapter={adapter!r} is not allowed; expected one of {list(ADAPTERS)}.")
        self.shared, self.domain, self.adapter = shared, domain, adapter
        self.patterns = None if positions == "all" else [positions] if isinstance(positions, str) else list(positions)

    def adapts(self, name):
        """Whether the conv ``name`` gets an adapter."""
        return self.patterns is None or any(fnmatch.fnmatchcase(name, pattern) for pattern in self.patterns)

    def layer(self, name, factory):
        return self.domain.get(name, factory)

    def bn(self, x, name, fold_into_conv=DEFAULT_FOLD):
        return self.domain.get(name, lambda layer_name: batch_norm_layer(layer_name, fold_into_conv))(x)

    def _pointwise(self, x, bank, filters, strides, name):
        if strides > 1:
            x = SpatialSubsample(strides, name=f"{name}_subsample")(x)
        return bank.get(name, conv_layer(filters, 1))(x)

    def conv(self, x, filters, kernel_size, strides, name):
        inputs = x
        if kernel_size == 1:
            y = self._pointwise(x, self.shared, filters, strides, name)
        else:
            if strides > 1:
                x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
            y = self.shared.get(name, conv_layer(filters, kernel_size, strides))(x)
        if self.adapter is None or not self.adapts(name):
            return y
        if self.adapter == "parallel":
            side = self._pointwise(inputs, self.domain, filters, strides, f"{name}_adapter")
        else:
            side = self.bn(y, f"{name}_adapter_bn", fold_into_conv="never")  # y also feeds the Add below
            side = self.domain.get(f"{name}_adapter", conv_layer(filters, 1))(side)
        return layers.Add(name=f"{name}_adapter_add")([y, side])


def bn_relu(x, prefix, index="", units=PLAIN, fold_into_conv=DEFAULT_FOLD):
    """BN then ReLU, named ``{prefix}_bn{index}`` and ``{prefix}_relu{index}``."""
    x = units.bn(x, f"{prefix}_bn{index}", fold_into_conv)
    return layers.ReLU(name=f"{prefix}_relu{index}")(x)


def needs_projection(x, filters, strides):
    """A shortcut needs a 1x1 projection where the width or the resolution changes."""
    return strides != 1 or x.shape[-1] != filters


def preact_basic_block(x, filters, strides=1, dropout=0.0, name="block", units=PLAIN):
    """Pre-activation basic block B(3,3) of WRN and pre-act ResNet-110.

    ``BN-ReLU-conv3x3(stride)-BN-ReLU-[dropout]-conv3x3`` plus a shortcut.
    Where the width or the stride changes, the shortcut is a 1x1 convolution
    (with the stride) of the *pre-activated* input, as in the WRN authors' code
    (Zagoruyko & Komodakis 2016) and He et al.'s ``both_preact`` units;
    otherwise it is the identity on ``x``.  Dropout sits between the two
    convolutions (WRN paper, Sec. 2.4).  With `AdapterUnits` every convolution
    (shortcut included) gets its adapter: seed 000's WRN-RAM.

    Shapes: ``(B, H, W, C) -> (B, H / strides, W / strides, filters)``.
    Layers: ``{name}_bn1, _relu1, _conv1, _bn2, _relu2, [_dropout], _conv2,
    [_shortcut_conv], _add``.
    """
    preact = bn_relu(x, name, 1, units, fold_into_conv="never")  # x (a stem conv's output, at most) feeds the shortcut too
    if needs_projection(x, filters, strides):
        shortcut = units.conv(preact, filters, 1, strides, f"{name}_shortcut_conv")
    else:
        shortcut = x
    y = units.conv(preact, filters, 3, strides, f"{name}_conv1")
    y = bn_relu(y, name, 2, units)
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = units.conv(y, filters, 3, 1, f"{name}_conv2")
    return layers.Add(name=f"{name}_add")([shortcut, y])


def preact_bottleneck_block(x, filters, strides=1, dropout=0.0, name="block", units=PLAIN, expansion=4):
    """Pre-activation bottleneck unit of pre-act ResNet-164/1001 (He et al. 2016).

    ``BN-ReLU-conv1x1(filters)-BN-ReLU-conv3x3(filters, stride)-BN-ReLU-
    [dropout]-conv1x1(expansion * filters)`` plus a shortcut (1x1 projection of
    the pre-activated input where width or stride change, as in He et al.'s
    ``both_preact`` units).  The stride is on the 3x3 convolution, so no input
    pixel is skipped (He et al.'s Torch code strides the first 1x1; parameter
    counts are the same either way).

    Shapes: ``(B, H, W, C) -> (B, H / strides, W / strides, expansion * filters)``.
    """
    out_filters = expansion * filters
    preact = bn_relu(x, name, 1, units, fold_into_conv="never")  # x (a stem conv's output, at most) feeds the shortcut too
    if needs_projection(x, out_filters, strides):
        shortcut = units.conv(preact, out_filters, 1, strides, f"{name}_shortcut_conv")
    else:
        shortcut = x
    y = units.conv(preact, filters, 1, 1, f"{name}_conv1")
    y = bn_relu(y, name, 2, units)
    y = units.conv(y, filters, 3, strides, f"{name}_conv2")
    y = bn_relu(y, name, 3, units)
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = units.conv(y, out_filters, 1, 1, f"{name}_conv3")
    return layers.Add(name=f"{name}_add")([shortcut, y])


def postact_basic_block(x, filters, strides=1, dropout=0.0, name="block", units=PLAIN, activate=True):
    """Original (post-activation) basic block of RoR-3 on ResNets (Zhang et al. 2016).

    ``conv3x3(stride)-BN-ReLU-[dropout]-conv3x3-BN``, added to the shortcut,
    then ReLU.  The shortcut is a 1x1 convolution + BN (ResNet option B) where
    width or stride change.  With ``activate=False`` the sum is returned before
    the ReLU, so RoR can add its level-1/level-2 shortcuts first.

    Shapes: ``(B, H, W, C) -> (B, H / strides, W / strides, filters)``.
    """
    if needs_projection(x, filters, strides):
        shortcut = units.conv(x, filters, 1, strides, f"{name}_shortcut_conv")
        shortcut = units.bn(shortcut, f"{name}_shortcut_bn", fold_into_conv="always")
    else:
        shortcut = x
    y = units.conv(x, filters, 3, strides, f"{name}_conv1")
    y = bn_relu(y, name, 1, units)
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = units.conv(y, filters, 3, 1, f"{name}_conv2")
    y = units.bn(y, f"{name}_bn2", fold_into_conv="always")
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    if activate:
        y = layers.ReLU(name=f"{name}_out")(y)
    return y


def conv_bn(x, filters, strides, name, units=PLAIN, fold_into_conv=DEFAULT_FOLD):
    """A 3x3 conv unit with its BN, ``{name}`` and ``{name}_bn`` (ResNet-26's unit)."""
    return units.bn(units.conv(x, filters, 3, strides, name), f"{name}_bn", fold_into_conv)


def resnet26_basic_block(x, filters, strides=1, name="block", units=PLAIN):
    """Basic block of Rebuffi et al.'s ResNet-26 (the residual-adapter reference code).

    ``conv-BN-ReLU-conv-BN`` (each conv an adapter-aware unit), added to the
    shortcut, then ReLU.  Where width or stride change, the shortcut has no
    parameters: 2x2 average pooling (when strided) and zero channels appended
    (the reference code's ``DownsampleB``).

    Shapes: ``(B, H, W, C) -> (B, H / strides, W / strides, filters)``.
    """
    y = conv_bn(x, filters, strides, f"{name}_conv1", units)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = conv_bn(y, filters, 1, f"{name}_conv2", units, fold_into_conv="always")  # the residual Add follows
    shortcut = x
    if needs_projection(x, filters, strides):
        if strides > 1:
            shortcut = layers.AveragePooling2D(strides, name=f"{name}_shortcut_pool")(x)
        shortcut = ChannelZeroPad(filters - x.shape[-1], name=f"{name}_shortcut_pad")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


BLOCKS = {
    "preact_basic": preact_basic_block,
    "preact_bottleneck": preact_bottleneck_block,
    "postact_basic": postact_basic_block,
}


def residual_group(x, block, filters, num_blocks, strides, dropout, name, activate_last=True, units=PLAIN):
    """A group (stage) of ``num_blocks`` blocks; only the first has ``strides``.

    The CIFAR papers downsample in the *first* block of a group (unlike
    ``keras.applications.resnet_v2``, which strides the last).  Blocks are
    named ``{name}_block1 ... {name}_block{num_blocks}``.
    ``activate_last=False`` leaves the last post-activation block un-ReLU'd
    (see `postact_basic_block`).
    """
    block_fn = BLOCKS[block]
    for index in range(num_blocks):
        kwargs = {}
        if block == "postact_basic" and index == num_blocks - 1:
            kwargs["activate"] = activate_last
        x = block_fn(
            x,
            filters,
            strides=strides if index == 0 else 1,
            dropout=dropout,
            name=f"{name}_block{index + 1}",
            units=units,
            **kwargs,
        )
    return x


@keras.saving.register_keras_serializable(package="keras_wrn")
class ChannelZeroPad(layers.Layer):
    """Append ``extra`` all-zero channels: ``(B, H, W, C) -> (B, H, W, C + extra)``.

    With 2x2 average pooling in front, the parameter-free downsampling shortcut
    of the residual-adapter ResNet-26 (Rebuffi et al.'s ``DownsampleB``).
    """

    def __init__(self, extra, **kwargs):
        super().__init__(**kwargs)
        self.extra = int(extra)

    def call(self, x):
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, self.extra]])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (None if input_shape[-1] is None else input_shape[-1] + self.extra,)

    def get_config(self):
        return {**super().get_config(), "extra": self.extra}


@keras.saving.register_keras_serializable(package="keras_wrn")
class SpatialSubsample(layers.Layer):
    """Keep every ``strides``-th row and column: ``(B, H, W, C) -> (B, ceil(H/s), ceil(W/s), C)``.

    Followed by a 1x1 convolution with stride 1 it computes a strided 1x1
    convolution exactly.  Used instead of one: TensorFlow 2.21's oneDNN kernels
    crash or corrupt memory while training strided 1x1 convolutions on fewer
    than 16 channels (reproduced: 16x16x8 input, stride 2).
    """

    def __init__(self, strides, **kwargs):
        super().__init__(**kwargs)
        self.strides = int(strides)

    def call(self, x):
        return x[:, :: self.strides, :: self.strides, :]

    def compute_output_shape(self, input_shape):
        def size(dim):
            return None if dim is None else -(-dim // self.strides)

        return (input_shape[0], size(input_shape[1]), size(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "strides": self.strides}
