"""Converters from the original implementations' weight files into keras_wrn models.

- `from_wide_resnet_pytorch`: checkpoints of the authors' PyTorch WRN code
  (szagoruyko/wide-residual-networks, ``pytorch/resnet.py``).
- `from_residual_adapters`: the residual-adapter reference code's ResNet-26
  (normal / series / parallel modes, all tasks) as a `MultiDomainNetwork`.
- `from_legacy_keras`: Keras 1/2 HDF5 files of the seed repositories (Theano
  or TensorFlow), loaded where an exact counterpart exists, refused with the
  reason where the seed's network is not the paper's.

Every converter reads tensors without unpickling arbitrary objects and returns
a keras_wrn model (the residual-adapter one: a ``(MultiDomainNetwork, mode)``
pair) whose outputs equal the original's on the same (normalised,
channels-last) input.
"""

from keras_wrn.convert.legacy_keras import SEEDS, from_legacy_keras, read_legacy_weights
from keras_wrn.convert.pytorch_wrn import from_wide_resnet_pytorch, wide_resnet_pytorch_arguments
from keras_wrn.convert.residual_adapters import from_residual_adapters

__all__ = ["SEEDS", "from_legacy_keras", "from_residual_adapters", "from_wide_resnet_pytorch", "read_legacy_weights",
           "wide_resnet_pytorch_arguments"]
