"""One module per family, each exposing its builder and `Family` record; `ror` holds two (RoR-3 and Pre-RoR-3)."""

from keras_wrn.models.preact_resnet import create_pre_activation_resnet
from keras_wrn.models.resnet26 import resnet26
from keras_wrn.models.ror import create_pre_residual_of_residual, create_residual_of_residual
from keras_wrn.models.wrn import create_wide_residual_network
from keras_wrn.models.wrn_ram import create_wrn_ram

__all__ = [
    "create_pre_activation_resnet",
    "create_pre_residual_of_residual",
    "create_residual_of_residual",
    "create_wide_residual_network",
    "create_wrn_ram",
    "resnet26",
]
