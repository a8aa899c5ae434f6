"""The papers' training recipes as named presets, and their learning-rate schedules.

A recipe fixes the optimizer, the batch size, the augmentation, the loss and a
schedule given in *epochs of the full recipe*; asking for fewer (or more)
epochs scales it by ``epochs / recipe.epochs`` so the schedule keeps its shape.
Schedules are Keras `LearningRateSchedule`s over optimizer iterations, so they
are saved with the optimizer and resume at the right position:

- ``"step"`` (the papers' recipes): Keras' `PiecewiseConstantDecay`, the rate
  multiplied by ``factor`` at each milestone epoch;
- ``"one-cycle"`` (the ``fast`` recipe): `OneCycle`, a linear rise to the peak
  rate over the first ``warmup_fraction`` of the run and a linear fall to zero.

The ``fast`` recipe is this package's own, for short runs: the one-cycle
schedule (Smith & Topin 2017, "Super-convergence"; Smith 2018), label
smoothing of 0.1 (Szegedy et al. 2016) and a batch of 256 at twice the WRN
rate (Goyal et al. 2017's linear scaling).  `Recipe.source` says so per recipe.
"""

import dataclasses
import math

import keras

from keras_wrn.optimizers import ADAPTER_WEIGHT_DECAY

__all__ = ["OneCycle", "Recipe", "RECIPES", "SCHEDULES", "get_recipe", "learning_rate_schedule", "learning_rate_at"]


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    epochs: int
    batch_size: int
    learning_rate: float
    milestones: tuple  # epochs (fractions allowed) at which lr is multiplied by `factor`
    factor: float
    weight_decay: object  # float, or {variable-path pattern: float} per layer kind
    nesterov: bool
    augmentation: str
    momentum: float = 0.9
    warmup_learning_rate: float = 0.0  # 0: no warm-up
    warmup_iterations: int = 0
    source: str = ""
    schedule: str = "step"  # a key of SCHEDULES
    warmup_fraction: float = 0.0  # one-cycle: share of the run spent rising to `learning_rate`
    initial_fraction: float = 0.04  # one-cycle: the first rate, as a fraction of `learning_rate`
    label_smoothing: float = 0.0  # keras_wrn.losses.SmoothedSparseCategoricalCrossentropy
    ema_momentum: float = 0.0  # > 0: the optimizer keeps an exponential moving average of the weights



# Pre-act ResNet: /10 at 32k and 48k iterations, stop at 64k, batch 128 on the
# 50k CIFAR training images (391 iterations per epoch): 81.9 / 122.8 / 163.7 epochs.
_PREACT_STEPS_PER_EPOCH = math.ceil(50_000 / 128)

RECIPES = {
    "wrn": Recipe(
        "wrn", 200, 128, 0.1, (60, 120, 160), 0.2, 5e-4, True, "wrn",
        source="Zagoruyko & Komodakis 2016: SGD Nesterov 0.9, lr 0.1 x0.2 at 60/120/160 of 200, wd 5e-4",
    ),
    "preact": Recipe(
        "preact", round(64_000 / _PREACT_STEPS_PER_EPOCH), 128, 0.1,
        (32_000 / _PREACT_STEPS_PER_EPOCH, 48_000 / _PREACT_STEPS_PER_EPOCH), 0.1, 1e-4, False, "preact",
        source="He et al. 2016: SGD 0.9, lr 0.1 /10 at 32k and 48k iterations, stop at 64k, wd 1e-4",
    ),
    "preact-110": Recipe(
        "preact-110", round(64_000 / _PREACT_STEPS_PER_EPOCH), 128, 0.1,
        (32_000 / _PREACT_STEPS_PER_EPOCH, 48_000 / _PREACT_STEPS_PER_EPOCH), 0.1, 1e-4, False, "preact",
        warmup_learning_rate=0.01, warmup_iterations=400,
        source="He et al. 2016, ResNet-110: the preact recipe with lr 0.01 for the first 400 iterations",
    ),
    "ror": Recipe(
        "ror", 500, 128, 0.1, (250, 375), 0.1, 1e-4, False, "preact",
        source="Zhang et al. 2016 train 500 epochs, SGD 0.9, lr 0.1, wd 1e-4; the /10 steps at 50% and "
        "75% are this package's choice (paper-numbers.md gives no milestones)",
    ),
    "adapters": Recipe(
        "adapters", 120, 128, 0.1, (80, 100), 0.1, ADAPTER_WEIGHT_DECAY, False, "wrn",
        source="Rebuffi et al. 2017/2018: SGD 0.9, lr 0.1 x0.1 at 80 and 100 of 120 epochs; weight decay "
        "per layer kind: 1e-4 on the 1x1 adapters, 5e-4 on the classifier and the (trainable) 3x3 convs",
    ),
    "fast": Recipe(
        "fast", 30, 256, 0.2, (), 1.0, 5e-4, True, "wrn", schedule="one-cycle", warmup_fraction=0.15,
        label_smoothing=0.1,
        source="this package's choice for short runs: SGD Nesterov 0.9 with coupled wd 5e-4 (the WRN paper's), "
        "batch 256 at lr 0.2 (linear scaling, Goyal et al. 2017), one-cycle: linear from lr/25 to lr over 15% of "
        "the run, then linearly to 0 (Smith & Topin 2017), label smoothing 0.1 (Szegedy et al. 2016), 30 epochs; "
        "no moving average of the weights (measured: it lost 56 points on WRN-16-1 in 10 epochs, see README)",
    ),
    "finetune": Recipe(
        "finetune", 30, 128, 0.01, (15, 25), 0.1, 5e-4, True, "wrn",
        source="this package's choice for transfer from a trained network: the wrn recipe's optimizer at "
        "a tenth of its learning rate, x0.1 at 50% and 83% of 30 epochs",
    ),
}


def get_recipe(name):
    if name not in RECIPES:
        raise ValueError(f"recipe={name!r} does not exist; expected one of {sorted(RECIPES)}.")
    return RECIPES[name]


def _validate_epochs(recipe, epochs):
    if epochs is None:
        return recipe.epochs
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs={epochs!r} is not allowed; expected an integer >= 1.")
    return epochs


@keras.saving.register_keras_serializable(package="keras_wrn")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """A one-cycle learning rate: linear rise, then linear fall to zero.

    From ``peak * initial_fraction`` at iteration 0 the rate rises linearly to
    ``peak`` at ``warmup_steps``, then falls linearly to 0 at ``total_steps``
    (and stays 0 after).  Smith & Topin 2017 ("Super-convergence") and Smith
    2018 train in a fraction of the epochs of a step schedule with it.

    Args:
        peak: the highest rate, reached at ``warmup_steps``.
        total_steps: iterations of the whole run (``epochs * steps_per_epoch``).
        warmup_steps: iterations of the rise, in [0, total_steps).
        initial_fraction: the rate at iteration 0 as a fraction of ``peak``.
    """

    def __init__(self, peak, total_steps, warmup_steps, initial_fraction=0.04):
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"OneCycle: warmup_steps={warmup_steps!r} must be in [0, total_steps={total_steps!r}).")
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.initial_fraction = float(initial_fraction)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        start = self.peak * self.initial_fraction
        rising = start + (self.peak - start) * step / max(self.warmup_steps, 1)
        falling = self.peak * (self.total_steps - step) / (self.total_steps - self.warmup_steps)
        return keras.ops.maximum(keras.ops.where(step < self.warmup_steps, rising, falling), 0.0)

    def get_config(self):
        return dict(peak=self.peak, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                    initial_fraction=self.initial_fraction)


def _step_schedule(recipe, steps_per_epoch, epochs):
    scale = epochs / recipe.epochs
    # Keras switches to the next value once iterations > boundary; the first
    # update of milestone epoch m runs at iterations == m * steps_per_epoch.
    boundaries = [max(0, round(m * scale * steps_per_epoch) - 1) for m in recipe.milestones]
    values = [recipe.learning_rate * recipe.factor**i for i in range(len(boundaries) + 1)]
    if recipe.warmup_iterations:
        warmup_end = max(0, round(recipe.warmup_iterations * scale) - 1)
        boundaries = [warmup_end] + boundaries
        values = [recipe.warmup_learning_rate] + values
    # Milestones scaled onto the same iteration are merged (a very short run).
    merged_boundaries, merged_values = [], [values[0]]
    for boundary, value in zip(boundaries, values[1:]):
        if merged_boundaries and boundary <= merged_boundaries[-1]:
            merged_values[-1] = value
        else:
            merged_boundaries.append(boundary)
            merged_values.append(value)
    if not merged_boundaries:
        return keras.optimizers.schedules.PiecewiseConstantDecay([10**12], merged_values * 2)
    return keras.optimizers.schedules.PiecewiseConstantDecay(merged_boundaries, merged_values)


def _one_cycle_schedule(recipe, steps_per_epoch, epochs):
    total = epochs * steps_per_epoch
    return OneCycle(recipe.learning_rate, total, min(round(recipe.warmup_fraction * total), total - 1),
                    recipe.initial_fraction)


# Recipe.schedule -> the function building its Keras schedule.
SCHEDULES = {"step": _step_schedule, "one-cycle": _one_cycle_schedule}


def learning_rate_schedule(recipe, steps_per_epoch, epochs=None):
    """The Keras schedule over iterations of ``recipe`` (a name or `Recipe`) scaled to ``epochs``."""
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    epochs = _validate_epochs(recipe, epochs)
    if not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch={steps_per_epoch!r} is not allowed; expected an integer >= 1.")
    return SCHEDULES[recipe.schedule](recipe, steps_per_epoch, epochs)


def learning_rate_at(recipe, epoch, steps_per_epoch=391, epochs=None):
    """The learning rate at the start of (0-based) ``epoch``, for tests and logs."""
    schedule = learning_rate_schedule(recipe, steps_per_epoch, epochs)
    return float(keras.ops.convert_to_numpy(schedule(epoch * steps_per_epoch)))
