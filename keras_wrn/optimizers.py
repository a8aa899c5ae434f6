"""The papers' optimizer: SGD whose weight decay is added to the gradient.

The authors of every family in this package trained with Torch's SGD
(`optim.sgd` with `weightDecay`, later PyTorch's `SGD(weight_decay=...)`), which
computes, for every trainable parameter ``w`` with gradient ``g``::

    g   = g + weight_decay * w             # coupled L2, before momentum
    buf = momentum * buf + g               # dampening 0
    d   = g + momentum * buf  if nesterov else buf
    w   = w - lr * d

Keras' own ``SGD(weight_decay=...)`` is *decoupled* (``w -= lr * wd * w``
outside the momentum buffer), and an L2 kernel regulariser reaches only the
kernels it is attached to; neither is what the papers ran.  This optimizer is.
It also keeps the momentum buffer in Torch's scale (``lr`` outside the buffer),
so a learning-rate drop acts on the whole step at once as it did for the authors.

An exponential moving average of the weights is Keras' own (``use_ema=True``,
``ema_momentum``): its averages are optimizer variables, saved in every
checkpoint with the rest of the optimizer's state.
"""

import contextlib
import fnmatch

import keras
from keras import ops

__all__ = ["ADAPTER_WEIGHT_DECAY", "CoupledWeightDecaySGD", "PAPER_OPTIMIZERS", "paper_optimizer", "validate_l2"]


@keras.saving.register_keras_serializable(package="keras_wrn")
class CoupledWeightDecaySGD(keras.optimizers.SGD):
    """SGD with Torch-style (coupled) L2 weight decay on every trainable variable.

    Args:
        learning_rate: float or schedule. Defaults to 0.1 (WRN, pre-act ResNet).
        momentum: float in [0, 1]. Defaults to 0.9.
        nesterov: bool. Defaults to True (WRN paper).
        l2: float >= 0, the coefficient added as ``l2 * w`` to each gradient
            before the momentum update. Defaults to 5e-4 (WRN paper).
            Or, for decay per layer kind (the residual-adapter recipe), a dict
            ``{pattern: coefficient}`` of shell-style patterns matched against
            each variable's path (``"group1_block1_conv1/kernel"``) in order,
            with ``"*"`` as the last, catch-all entry, e.g.
            ``{"*adapter*": 1e-4, "predictions/*": 5e-4, "*": 5e-4}``.
        average_at_fit_end: with ``use_ema=True``, whether ``model.fit``
            replaces the weights by their average when it ends (Keras'
            behaviour, the default).  The training loop, which calls ``fit``
            once per epoch, passes False and publishes the average through
            `averaged_weights` instead.
        **kwargs: the other `keras.optimizers.Optimizer` arguments (e.g.
            ``use_ema``, ``ema_momentum``), except `weight_decay` (the
            decoupled kind), which is refused.
    """

    use_momentum_kernel = True  # see `_apply_momentum_kernel`

    def __init__(self, learning_rate=0.1, momentum=0.9, nesterov=True, l2=5e-4, average_at_fit_end=True, **kwargs):
        if kwargs.get("weight_decay"):
            raise ValueError(
                "CoupledWeightDecaySGD: `weight_decay` (Keras' decoupled decay) is not "
                f"supported, got weight_decay={kwargs['weight_decay']!r}; pass the "
                "coefficient as `l2` instead."
            )
        kwargs.pop("weight_decay", None)
        super().__init__(
            learning_rate=learning_rate, momentum=float(momentum), nesterov=nesterov, **kwargs
        )
        self.l2 = validate_l2(l2)
        self.average_at_fit_end = bool(average_at_fit_end)

    def build(self, variables):
        super().build(variables)
        # Resolved once per variable: inside update_step the TF backend hands
        # over the raw tf.Variable, which has no Keras path.
        self._l2_values = [self.l2_for(variable) for variable in variables]

    def l2_for(self, variable):
        """The decay coefficient of ``variable`` (by its path, for a per-kind ``l2``)."""
        if not isinstance(self.l2, dict):
            return self.l2
        for pattern, coefficient in self.l2.items():
            if fnmatch.fnmatchcase(variable.path, pattern):
                return coefficient
        return 0.0

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        l2 = self._l2_values[self._get_variable_index(variable)] if isinstance(self.l2, dict) else self.l2
        if l2:
            gradient = ops.add(gradient, ops.multiply(ops.convert_to_tensor(l2, dtype=dtype), variable))
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(learning_rate, gradient))
            return
        momentum = ops.convert_to_tensor(self.momentum, dtype=dtype)
        buf = self.momentums[self._get_variable_index(variable)]
        if self._apply_momentum_kernel(gradient, variable, learning_rate, momentum, buf):
            return
        self.assign(buf, ops.add(ops.multiply(momentum, buf), gradient))
        direction = ops.add(gradient, ops.multiply(momentum, buf)) if self.nesterov else buf
        self.assign_sub(variable, ops.multiply(learning_rate, direction))

    def _apply_momentum_kernel(self, gradient, variable, learning_rate, momentum, buf):
        """The momentum and variable update above as TensorFlow's one ``ResourceApplyMomentum`` kernel.

        Its arithmetic is the formula above (``accum = momentum * accum + g``,
        then ``w -= lr * accum``, or ``w -= lr * (g + momentum * accum)`` with
        Nesterov: Torch's scale, lr outside the buffer), in one pass over each
        tensor instead of seven elementwise ops and their copies
        (``benchmarks/fast_paths.md``: training 1-3% faster in bfloat16, within
        1.4% either way in float32).  Only on the TensorFlow
        backend, outside a distribution strategy (whose per-replica variables
        the generic ops handle) and for dense gradients; returns whether it ran.
        Setting `use_momentum_kernel` to False on an instance keeps it on the
        generic ops (``benchmarks/fast_paths.py`` compares the two).
        """
        if not self.use_momentum_kernel or keras.backend.backend() != "tensorflow":
            return False
        import tensorflow as tf  # deferred: only the TensorFlow backend gets here

        accumulator = buf.value if isinstance(buf, keras.Variable) else buf  # the tf.Variable behind a Keras one
        if (tf.distribute.has_strategy() or isinstance(gradient, tf.IndexedSlices)
                or not hasattr(variable, "handle") or not hasattr(accumulator, "handle")):
            return False
        tf.raw_ops.ResourceApplyMomentum(var=variable.handle, accum=accumulator.handle, lr=learning_rate,
                                         grad=gradient, momentum=momentum, use_locking=False,
                                         use_nesterov=bool(self.nesterov))
        return True

    def finalize_variable_values(self, var_list):
        if self.average_at_fit_end:
            super().finalize_variable_values(var_list)

    @contextlib.contextmanager
    def averaged_weights(self, var_list):
        """Within the block, ``var_list`` (the trainable variables this optimizer updates, in its order)
        holds the moving average of the weights; afterwards, the exact values it held before.

        Without ``use_ema`` the weights are left as they are.  BatchNorm
        statistics are not trainable, so they are not averaged: the block
        runs the averaged weights with the current statistics.
        """
        if not self.use_ema:
            yield
            return
        current = [ops.convert_to_numpy(variable) for variable in var_list]
        super().finalize_variable_values(var_list)
        try:
            yield
        finally:
            for variable, value in zip(var_list, current):
                variable.assign(value)

    def get_config(self):
        config = super().get_config()
        config.update(l2=self.l2, average_at_fit_end=self.average_at_fit_end)
        return config


def validate_l2(l2):
    """``l2`` as floats: a coefficient >= 0, or ``{variable-path pattern: coefficient}`` ending in ``"*"``."""

    def valid(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0

    if isinstance(l2, dict):
        if not l2 or list(l2)[-1] != "*" or not all(isinstance(k, str) and valid(v) for k, v in l2.items()):
            raise ValueError(
                "CoupledWeightDecaySGD: a per-kind `l2` must map shell-style variable-path patterns to "
                f'floats >= 0 and end with the catch-all "*", got l2={l2!r}.'
            )
        return {key: float(value) for key, value in l2.items()}
    if not valid(l2):
        raise ValueError(f"CoupledWeightDecaySGD: `l2` must be a float >= 0 or a dict of them, got l2={l2!r}.")
    return float(l2)


# Paper optimizers per family: (learning rate, momentum, nesterov).
#  - WRN (Zagoruyko & Komodakis 2016, Sec. 4): Nesterov 0.9, lr 0.1, dampening 0.
#  - Pre-act ResNet (He et al. 2016) and RoR-3 on ResNets (Zhang et al. 2016):
#    momentum 0.9, lr 0.1 (the papers do not use Nesterov).
#  - RoR-3-WRN / Pre-RoR-3 follow the WRN recipe they were built from.
PAPER_OPTIMIZERS = {
    "wrn": dict(learning_rate=0.1, momentum=0.9, nesterov=True),
    "preact": dict(learning_rate=0.1, momentum=0.9, nesterov=False),
    "ror": dict(learning_rate=0.1, momentum=0.9, nesterov=False),
    "pre_ror": dict(learning_rate=0.1, momentum=0.9, nesterov=True),
    # Rebuffi et al. 2017/2018 (ResNet-26, WRN-RAM): momentum 0.9, lr 0.1, decay per layer kind.
    "adapters": dict(learning_rate=0.1, momentum=0.9, nesterov=False),
}

# Weight decay per layer kind for networks with residual adapters (the reference
# recipe's defaults): 1e-4 on the 1x1 adapters, 5e-4 on everything else
# (classifier, BNs, the 3x3 convolutions when they train).
ADAPTER_WEIGHT_DECAY = {"*adapter*": 1e-4, "*": 5e-4}


def paper_optimizer(family, weight_decay, learning_rate=None):
    """The paper's optimizer for `family` with coupled decay `weight_decay`."""
    if family not in PAPER_OPTIMIZERS:
        raise ValueError(
            f"paper_optimizer: unknown family={family!r}; expected one of {sorted(PAPER_OPTIMIZERS)}."
        )
    settings = dict(PAPER_OPTIMIZERS[family])
    if learning_rate is not None:
        settings["learning_rate"] = learning_rate
    return CoupledWeightDecaySGD(l2=weight_decay, **settings)
