"""The comparison models of the benchmark: not part of the package.

- `plain_keras_wrn`: the obvious Keras WRN (Conv2D "same", BatchNormalization
  with Keras defaults, ReLU, Add, an L2 kernel regulariser on every conv),
  the baseline of ../shared/reference/machine.md.
- `TorchWRN`: PyTorch eager WRN-d-k with the same layers and parameter count
  as `keras_wrn.create_wide_residual_network`.
"""

import keras
from keras import layers


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
