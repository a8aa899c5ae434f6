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

import keras
from keras import layers, ops

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
CONV_INITIALIZER = "he_normal"


def conv2d(x, filters, kernel_size, strides, name):
    """Bias-free KxK convolution with Torch's symmetric padding.

    Shapes: ``(B, H, W, C) -> (B, ceil(H / strides), ceil(W / strides), filters)``.
    """
    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=CONV_INITIALIZER,
        name=name,
    )(x)


@keras.saving.register_keras_serializable(package="keras_wrn")
class BatchNormalization(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training step on TensorFlow is one fused kernel.

    It keeps Keras' class name on purpose: Keras derives the paths inside a
    ``.weights.h5`` file from the class name, so files written by Keras' own
    layer (every release, every converter output) load unchanged, and files
    written here load into models built from ``keras.layers.BatchNormalization``.

    Keras 3 normalises with separate moment, rsqrt, multiply and add ops (and as
    many again for the gradient); TensorFlow's ``FusedBatchNormV3`` (oneDNN on
    CPU) does the forward pass in one kernel and the backward pass in another.
    Same weights, same names, same moving-statistics
    update as Keras (the biased batch variance: the fused kernel's Bessel
    correction is undone); training outputs equal Keras' to float32 rounding.
    Inference, other backends, masks, synchronised (multi-replica) statistics,
    renormalisation and non-4D or non-float32 inputs use Keras' own path, and so
    does everything when the environment variable ``KERAS_WRN_FUSED_BATCH_NORM``
    is ``0`` at model tracing (to reproduce Keras' arithmetic bit for bit, e.g. to
    compare with a multi-replica run).
    """

    def _fusable(self, inputs, training, mask):
        import os

        return (os.environ.get("KERAS_WRN_FUSED_BATCH_NORM", "1") != "0" and training and self.trainable and mask is None and not self.synchronized and not self.renorm
                and keras.backend.backend() == "tensorflow" and len(inputs.shape) == 4
                and self.axis in (-1, 3) and keras.backend.standardize_dtype(inputs.dtype) == "float32"
                and self.scale and self.center)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
        count = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], variance.dtype)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)  # back to the biased estimate Keras keeps
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs


def batch_norm(x, name):
    """BatchNormalization over the channel axis with Torch's momentum and epsilon."""
    return BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


def bn_relu(x, prefix, index=""):
    """BN then ReLU, named ``{prefix}_bn{index}`` and ``{prefix}_relu{index}``."""
    x = batch_norm(x, f"{prefix}_bn{index}")
    return layers.ReLU(name=f"{prefix}_relu{index}")(x)


def needs_projection(x, filters, strides):
    """A shortcut needs a 1x1 projection where the width or the resolution changes."""
    return strides != 1 or x.shape[-1] != filters


def preact_basic_block(x, filters, strides=1, dropout=0.0, name="block"):
    """Pre-activation basic block B(3,3) of WRN and pre-act ResNet-110.

    ``BN-ReLU-conv3x3(stride)-BN-ReLU-[dropout]-conv3x3`` plus a shortcut.
    Where the width or the stride changes, the shortcut is a 1x1 convolution
    (with the stride) of the *pre-activated* input, as in the WRN authors' code
    (Zagoruyko & Komodakis 2016) and He et al.'s ``both_preact`` units;
    otherwise it is the identity on ``x``.  Dropout sits between the two
    convolutions (WRN paper, Sec. 2.4).

    Shapes: ``(B, H, W, C) -> (B, H / strides, W / strides, filters)``.
    Layers: ``{name}_bn1, _relu1, _conv1, _bn2, _relu2, [_dropout], _conv2,
    [_shortcut_conv], _add``.
    """
    preact = bn_relu(x, name, 1)
    if needs_projection(x, filters, strides):
        shortcut = conv2d(preact, filters, 1, strides, f"{name}_shortcut_conv")
    else:
        shortcut = x
    y = conv2d(preact, filters, 3, strides, f"{name}_conv1")
    y = bn_relu(y, name, 2)
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = conv2d(y, filters, 3, 1, f"{name}_conv2")
    return layers.Add(name=f"{name}_add")([shortcut, y])


def preact_bottleneck_block(x, filters, strides=1, dropout=0.0, name="block", expansion=4):
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
    preact = bn_relu(x, name, 1)
    if needs_projection(x, out_filters, strides):
        shortcut = conv2d(preact, out_filters, 1, strides, f"{name}_shortcut_conv")
    else:
        shortcut = x
    y = conv2d(preact, filters, 1, 1, f"{name}_conv1")
    y = bn_relu(y, name, 2)
    y = conv2d(y, filters, 3, strides, f"{name}_conv2")
    y = bn_relu(y, name, 3)
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = conv2d(y, out_filters, 1, 1, f"{name}_conv3")
    return layers.Add(name=f"{name}_add")([shortcut, y])


def postact_basic_block(x, filters, strides=1, dropout=0.0, name="block", activate=True):
    """Original (post-activation) basic block of RoR-3 on ResNets (Zhang et al. 2016).

    ``conv3x3(stride)-BN-ReLU-[dropout]-conv3x3-BN``, added to the shortcut,
    then ReLU.  The shortcut is a 1x1 convolution + BN (ResNet option B) where
    width or stride change.  With ``activate=False`` the sum is returned before
    the ReLU, so RoR can add its level-1/level-2 shortcuts first.

    Shapes: ``(B, H, W, C) -> (B, H / strides, W / strides, filters)``.
    """
    if needs_projection(x, filters, strides):
        shortcut = conv2d(x, filters, 1, strides, f"{name}_shortcut_conv")
        shortcut = batch_norm(shortcut, f"{name}_shortcut_bn")
    else:
        shortcut = x
    y = conv2d(x, filters, 3, strides, f"{name}_conv1")
    y = bn_relu(y, name, 1)
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = conv2d(y, filters, 3, 1, f"{name}_conv2")
    y = batch_norm(y, f"{name}_bn2")
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    if activate:
        y = layers.ReLU(name=f"{name}_out")(y)
    return y


BLOCKS = {
    "preact_basic": preact_basic_block,
    "preact_bottleneck": preact_bottleneck_block,
    "postact_basic": postact_basic_block,
}
# Output channels of a block relative to its `filters` argument.
EXPANSION = {"preact_basic": 1, "preact_bottleneck": 4, "postact_basic": 1}


def residual_group(x, block, filters, num_blocks, strides, dropout, name, activate_last=True):
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
