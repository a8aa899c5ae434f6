"""The comparison models of the benchmark: not part of the package.

- `plain_keras_wrn`: the obvious Keras WRN (Conv2D "same", BatchNormalization
  with Keras defaults, ReLU, Add, an L2 kernel regulariser on every conv),
  the baseline of ../shared/reference/machine.md.
- `torch_wrn`: PyTorch eager WRN-d-k with the same layers and parameter count
  as `keras_wrn.create_wide_residual_network`.
- `plain_keras_preact_resnet` / `torch_preact_resnet`: the same for
  `keras_wrn.create_pre_activation_resnet` (basic or bottleneck units).
- `plain_keras_resnet26` / `torch_resnet26`: the same for the ResNet-26 of
  `keras_wrn.adapters` (plain, or a domain model with series / parallel
  adapters whose shared 3x3 convolutions are frozen).
"""

import keras
from keras import layers, ops


def plain_keras_wrn(depth, width, classes=10, input_shape=(32, 32, 3), weight_decay=5e-4):
    regularizer = keras.regularizers.L2(weight_decay)
    n = (depth - 4) // 6

    def conv(x, filters, kernel, strides):
        return layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                             kernel_regularizer=regularizer)(x)

    inputs = keras.Input(input_shape)
    x = conv(inputs, 16, 3, 1)
    for group, (filters, stride) in enumerate(zip((16, 32, 64), (1, 2, 2))):
        filters *= width
        for block in range(n):
            strides = stride if block == 0 else 1
            pre = layers.ReLU()(layers.BatchNormalization()(x))
            y = conv(pre, filters, 3, strides)
            y = conv(layers.ReLU()(layers.BatchNormalization()(y)), filters, 3, 1)
            shortcut = conv(pre, filters, 1, strides) if (strides > 1 or x.shape[-1] != filters) else x
            x = layers.Add()([y, shortcut])
    x = layers.GlobalAveragePooling2D()(layers.ReLU()(layers.BatchNormalization()(x)))
    model = keras.Model(inputs, layers.Dense(classes)(x))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def torch_wrn(depth, width, classes=10):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, inp, out, stride):
            super().__init__()
            self.bn1, self.conv1 = nn.BatchNorm2d(inp), nn.Conv2d(inp, out, 3, stride, 1, bias=False)
            self.bn2, self.conv2 = nn.BatchNorm2d(out), nn.Conv2d(out, out, 3, 1, 1, bias=False)
            self.shortcut = nn.Conv2d(inp, out, 1, stride, bias=False) if (stride > 1 or inp != out) else None

        def forward(self, x):
            pre = torch.relu(self.bn1(x))
            y = self.conv2(torch.relu(self.bn2(self.conv1(pre))))
            return y + (self.shortcut(pre) if self.shortcut is not None else x)

    n = (depth - 4) // 6
    modules, inp = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)], 16
    for filters, stride in zip((16, 32, 64), (1, 2, 2)):
        for block in range(n):
            modules.append(Block(inp, filters * width, stride if block == 0 else 1))
            inp = filters * width
    modules += [nn.BatchNorm2d(inp), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(inp, classes)]
    return nn.Sequential(*modules)


PREACT_EXPANSION = {"basic": 1, "bottleneck": 4}
PREACT_LAYERS_PER_BLOCK = {"basic": 6, "bottleneck": 9}


def _preact_blocks(depth, block_type):
    if block_type not in PREACT_EXPANSION:
        raise ValueError(f"block_type={block_type!r}: expected 'basic' or 'bottleneck'.")
    per_block = PREACT_LAYERS_PER_BLOCK[block_type]
    if depth < per_block + 2 or (depth - 2) % per_block:
        raise ValueError(f"depth={depth!r}: expected {per_block}n + 2 for {block_type} units.")
    return (depth - 2) // per_block


def plain_keras_preact_resnet(depth, block_type, classes=10, input_shape=(32, 32, 3), weight_decay=1e-4):
    """The obvious Keras pre-activation ResNet (He et al. 2016): same parameters as
    `keras_wrn.create_pre_activation_resnet(depth=depth, block_type=block_type)`."""
    regularizer = keras.regularizers.L2(weight_decay)
    n, expansion = _preact_blocks(depth, block_type), PREACT_EXPANSION[block_type]

    def conv(x, filters, kernel, strides):
        return layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                             kernel_regularizer=regularizer)(x)

    def bn_relu(x):
        return layers.ReLU()(layers.BatchNormalization()(x))

    inputs = keras.Input(input_shape)
    x = conv(inputs, 16, 3, 1)
    for filters, stride in zip((16, 32, 64), (1, 2, 2)):
        out = filters * expansion
        for block in range(n):
            strides = stride if block == 0 else 1
            pre = bn_relu(x)
            if block_type == "basic":
                y = conv(bn_relu(conv(pre, filters, 3, strides)), filters, 3, 1)
            else:
                y = bn_relu(conv(pre, filters, 1, 1))
                y = bn_relu(conv(y, filters, 3, strides))
                y = conv(y, out, 1, 1)
            shortcut = conv(pre, out, 1, strides) if (strides > 1 or x.shape[-1] != out) else x
            x = layers.Add()([y, shortcut])
    x = layers.GlobalAveragePooling2D()(bn_relu(x))
    model = keras.Model(inputs, layers.Dense(classes)(x))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def torch_preact_resnet(depth, block_type, classes=10):
    """PyTorch eager pre-activation ResNet with the layers of
    `keras_wrn.create_pre_activation_resnet`: stride on the 3x3 conv, 1x1
    projection of the pre-activated input where width or stride change,
    BN eps 1e-5, symmetric padding."""
    import torch
    from torch import nn

    n, expansion = _preact_blocks(depth, block_type), PREACT_EXPANSION[block_type]

    class Block(nn.Module):
        def __init__(self, inp, filters, stride):
            super().__init__()
            out = filters * expansion
            if block_type == "basic":
                self.body = nn.Sequential(
                    nn.Conv2d(inp, filters, 3, stride, 1, bias=False),
                    nn.BatchNorm2d(filters), nn.ReLU(),
                    nn.Conv2d(filters, filters, 3, 1, 1, bias=False))
            else:
                self.body = nn.Sequential(
                    nn.Conv2d(inp, filters, 1, bias=False),
                    nn.BatchNorm2d(filters), nn.ReLU(),
                    nn.Conv2d(filters, filters, 3, stride, 1, bias=False),
                    nn.BatchNorm2d(filters), nn.ReLU(),
                    nn.Conv2d(filters, out, 1, bias=False))
            self.bn1 = nn.BatchNorm2d(inp)
            self.shortcut = nn.Conv2d(inp, out, 1, stride, bias=False) if (stride > 1 or inp != out) else None

        def forward(self, x):
            pre = torch.relu(self.bn1(x))
            return self.body(pre) + (self.shortcut(pre) if self.shortcut is not None else x)

    modules, inp = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)], 16
    for filters, stride in zip((16, 32, 64), (1, 2, 2)):
        for block in range(n):
            modules.append(Block(inp, filters, stride if block == 0 else 1))
            inp = filters * expansion
    modules += [nn.BatchNorm2d(inp), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(inp, classes)]
    return nn.Sequential(*modules)


def _resnet26_widths(width_factor):
    return int(32 * width_factor), tuple(int(w * width_factor) for w in (64, 128, 256))


def plain_keras_resnet26(width_factor=1.0, classes=10, input_shape=(32, 32, 3), weight_decay=5e-4):
    """The obvious Keras ResNet-26 of Rebuffi et al. (post-activation basic blocks,
    2x2 average pooling + zero channels as the downsampling shortcut): same
    parameters as `keras_wrn.adapters.resnet26(adapter=None)`."""
    regularizer = keras.regularizers.L2(weight_decay)
    stem, widths = _resnet26_widths(width_factor)

    def conv_bn(x, filters, strides):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                          kernel_regularizer=regularizer)(x)
        return layers.BatchNormalization()(x)

    inputs = keras.Input(input_shape)
    x = conv_bn(inputs, stem, 1)
    for filters in widths:
        for block in range(4):
            strides = 2 if block == 0 else 1
            y = conv_bn(layers.ReLU()(conv_bn(x, filters, strides)), filters, 1)
            shortcut = x
            if strides > 1 or x.shape[-1] != filters:
                extra = filters - x.shape[-1]
                shortcut = layers.AveragePooling2D(strides)(x) if strides > 1 else x
                shortcut = layers.Lambda(lambda t, extra=extra: ops.pad(t, [[0, 0], [0, 0], [0, 0], [0, extra]]))(
                    shortcut)
            x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(layers.ReLU()(layers.BatchNormalization()(x)))
    model = keras.Model(inputs, layers.Dense(classes)(x))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def torch_resnet26(adapter=None, width_factor=1.0, classes=10):
    """PyTorch eager ResNet-26 of `keras_wrn.adapters`, adapters on every conv unit.

    Conv unit: ``BN(conv3x3(x))``; series: ``z = conv3x3(x); BN(z + conv1x1(BN'(z)))``;
    parallel: ``BN(conv3x3(x) + conv1x1_stride(x))``.  With an adapter the shared
    3x3 convolutions are frozen (``requires_grad=False``), as in a domain model of
    `keras_wrn.adapters.MultiDomainNetwork`; BNs, adapters and the head train.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    if adapter not in (None, "series", "parallel"):
        raise ValueError(f"adapter={adapter!r}: expected None, 'series' or 'parallel'.")

    class ConvUnit(nn.Module):
        def __init__(self, inp, out, stride):
            super().__init__()
            self.conv = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
            if adapter is not None:
                self.conv.weight.requires_grad_(False)
            if adapter == "parallel":
                self.adapter = nn.Conv2d(inp, out, 1, stride, bias=False)
            elif adapter == "series":
                self.adapter_bn = nn.BatchNorm2d(out)
                self.adapter = nn.Conv2d(out, out, 1, bias=False)
            self.bn = nn.BatchNorm2d(out)

        def forward(self, x):
            y = self.conv(x)
            if adapter == "parallel":
                y = y + self.adapter(x)
            elif adapter == "series":
                y = y + self.adapter(self.adapter_bn(y))
            return self.bn(y)

    class Block(nn.Module):
        def __init__(self, inp, out, stride):
            super().__init__()
            self.conv1, self.conv2 = ConvUnit(inp, out, stride), ConvUnit(out, out, 1)
            self.stride, self.extra = stride, out - inp

        def forward(self, x):
            y = self.conv2(torch.relu(self.conv1(x)))
            shortcut = x
            if self.stride > 1 or self.extra:
                if self.stride > 1:
                    shortcut = F.avg_pool2d(shortcut, self.stride)
                shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra))
            return torch.relu(y + shortcut)

    stem, widths = _resnet26_widths(width_factor)
    modules, inp = [ConvUnit(3, stem, 1)], stem
    for filters in widths:
        for block in range(4):
            modules.append(Block(inp, filters, 2 if block == 0 else 1))
            inp = filters
    modules += [nn.BatchNorm2d(inp), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(inp, classes)]
    return nn.Sequential(*modules)
