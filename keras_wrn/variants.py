"""The registered model names and the arguments that define them, as data (timm / torchvision style).

``MODEL_VARIANTS`` maps a name to ``(family, arguments)``; `keras_wrn.registry`
joins a family key with its builder.  This module imports nothing heavy, so
listing names (``keras-wrn list``) does not start TensorFlow.
"""

import fnmatch

__all__ = ["MODEL_VARIANTS", "list_models"]

_WRN_VARIANTS = [(16, 1), (16, 2), (16, 4), (16, 8), (16, 10), (22, 8), (22, 10), (28, 10),
                 (28, 12), (40, 1), (40, 2), (40, 4), (40, 8), (40, 10)]

MODEL_VARIANTS = {
    # WRN paper, Tables 4-6 (plus WRN-16-1/16-2, the small ones used for tests and demos).
    **{f"wrn-{d}-{k}": ("wrn", dict(depth=d, width=k)) for d, k in _WRN_VARIANTS},
    # Pre-activation ResNets (He et al. 2016, Table 2/4) and seed 004's wide variant.
    # The CIFAR depths 20/56 of He et al.'s family, with pre-activation units (small, quick to train).
    "preact-20": ("preact", dict(depth=20, block_type="basic")),
    "preact-56": ("preact", dict(depth=56, block_type="basic")),
    "preact-110": ("preact", dict(depth=110, block_type="basic")),
    "preact-164": ("preact", dict(depth=164, block_type="bottleneck")),
    "preact-1001": ("preact", dict(depth=1001, block_type="bottleneck")),
    "preact-wide-14-4": ("preact", dict(depth=14, width=4, block_type="basic")),
    # RoR-3 on conv-BN-ReLU ResNets (Zhang et al. 2016).
    "ror3-56": ("ror", dict(depth=56)),
    # Rebuffi et al.'s ResNet-26 (64x64 inputs), plain or with residual adapters; see keras_wrn.models.resnet26.
    "resnet26": ("resnet26", dict(adapter=None)),
    "resnet26-adapters": ("resnet26", dict(adapter="parallel")),
    # Half width (16 / 32 / 64 / 128, the reference code's factor=0.5): the CPU-sized source
    # network of the adapter proof on CIFAR-10 (README, "Residual adapters on real domains").
    "resnet26-w0.5": ("resnet26", dict(adapter=None, width_factor=0.5)),
    "ror3-110": ("ror", dict(depth=110)),
    "ror3-164": ("ror", dict(depth=164)),
    "ror3-wrn-40-2": ("pre-ror", dict(depth=40, width=2)),
    "ror3-wrn-58-4": ("pre-ror", dict(depth=58, width=4)),
    # Seed 000's WRN-28-4 with series residual adapters (convolutions frozen).
    "wrn-ram-28-4": ("wrn-ram", dict(depth=28, width=4, adapter="series")),
}


def list_models(pattern="*"):
    """Sorted registered names matching the shell-style ``pattern`` (e.g. ``"wrn-28-*"``)."""
    return sorted(name for name in MODEL_VARIANTS if fnmatch.fnmatch(name, pattern))
