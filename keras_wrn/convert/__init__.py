"""Converters from the original implementations' weight files into keras_wrn models.

- `from_wide_resnet_pytorch`: checkpoints of the authors' PyTorch WRN code
  (szagoruyko/wide-residual-networks, ``pytorch/resnet.py``).

Every converter reads tensors without unpickling arbitrary objects and returns
a keras_wrn model whose outputs equal the original's on the same (normalised,
channels-last) input.
"""

from keras_wrn.convert.pytorch_wrn import from_wide_resnet_pytorch, wide_resnet_pytorch_arguments

__all__ = ["from_wide_resnet_pytorch", "wide_resnet_pytorch_arguments"]
