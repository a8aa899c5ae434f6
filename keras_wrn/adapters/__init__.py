"""Multi-domain networks with residual adapters (Rebuffi et al., NIPS 2017 / CVPR 2018).

- `network`: `MultiDomainNetwork` (shared frozen convolutions, per-domain
  adapters, BNs and heads) and `wrn_ram` (seed 000's WRN-RAM, one or many domains);
- `merge`: fold a domain's adapters into a plain network;
- `packs`: save and load one domain's parameters, tied to its backbone;
- `budget`: shared vs per-domain parameters.

The single-network builders are in `keras_wrn.models` (`resnet26`,
`create_wrn_ram`) and re-exported here.
"""

from keras_wrn.adapters.network import MultiDomainNetwork, wrn_ram
from keras_wrn.blocks import ADAPTERS
from keras_wrn.models import create_wrn_ram, resnet26

__all__ = ["ADAPTERS", "MultiDomainNetwork", "create_wrn_ram", "resnet26", "wrn_ram"]
