"""The papers' recipes and their learning-rate schedules at given epochs."""

import pytest

from keras_wrn.recipes import RECIPES, get_recipe, learning_rate_at, learning_rate_schedule


@pytest.mark.parametrize(
    "epoch,expected", [(0, 0.1), (59, 0.1), (60, 0.02), (119, 0.02), (120, 0.004), (159, 0.004), (160, 0.0008)]
)
def test_wrn_schedule(epoch, expected):
    assert learning_rate_at("wrn", epoch) == pytest.approx(expected)


@pytest.mark.parametrize("epoch,expected", [(0, 0.1), (5, 0.1), (6, 0.02), (12, 0.004), (16, 0.0008)])
def test_wrn_schedule_scales_to_fewer_epochs(epoch, expected):
    assert learning_rate_at("wrn", epoch, epochs=20) == pytest.approx(expected)


def test_preact_schedule_in_iterations():
    schedule = learning_rate_schedule("preact", steps_per_epoch=391)
    values = {i: float(schedule(i)) for i in (0, 31_999, 32_000, 47_999, 48_000)}
    assert values == pytest.approx({0: 0.1, 31_999: 0.1, 32_000: 0.01, 47_999: 0.01, 48_000: 0.001})
    assert get_recipe("preact").epochs == 164  # 64k iterations of 391


def test_preact_110_warms_up_for_400_iterations():
    schedule = learning_rate_schedule("preact-110", steps_per_epoch=391)
    assert [float(schedule(i)) for i in (0, 399, 400)] == pytest.approx([0.01, 0.01, 0.1])


def test_adapters_and_ror():
    assert [learning_rate_at("adapters", e) for e in (79, 80, 100)] == pytest.approx([0.1, 0.01, 0.001])
    assert [learning_rate_at("ror", e) for e in (249, 250, 375)] == pytest.approx([0.1, 0.01, 0.001])


def test_every_recipe_names_its_source():
    assert set(RECIPES) >= {"wrn", "preact", "ror", "adapters"}
    assert all(recipe.source for recipe in RECIPES.values())


def test_bad_recipe_arguments():
    with pytest.raises(ValueError, match="recipe='sgdr' does not exist"):
        get_recipe("sgdr")
    with pytest.raises(ValueError, match="epochs=0"):
        learning_rate_schedule("wrn", 10, epochs=0)
    with pytest.raises(ValueError, match="steps_per_epoch=0"):
        learning_rate_schedule("wrn", 0)


def test_one_epoch_run_has_a_valid_schedule():
    assert learning_rate_at("wrn", 0, steps_per_epoch=3, epochs=1) == pytest.approx(0.1)


def test_fast_recipe_is_a_one_cycle_scaled_by_epochs():
    recipe = get_recipe("fast")
    assert (recipe.schedule, recipe.batch_size, recipe.label_smoothing, recipe.ema_momentum) == ("one-cycle", 256, 0.1, 0)
    for epochs in (30, 10):
        steps = 196
        total, warmup = epochs * steps, round(0.15 * epochs * steps)
        schedule = learning_rate_schedule("fast", steps, epochs)
        values = [float(schedule(i)) for i in (0, warmup // 2, warmup, (warmup + total) // 2, total - 1, total)]
        assert values == pytest.approx([0.2 / 25, 0.2 / 25 + (0.2 - 0.2 / 25) * (warmup // 2) / warmup, 0.2,
                                        0.2 * (total - (warmup + total) // 2) / (total - warmup),
                                        0.2 / (total - warmup), 0.0], rel=1e-5)
    assert learning_rate_at("fast", 9, steps_per_epoch=196, epochs=10) == pytest.approx(0.2 * 196 / (1960 - 294))


def test_one_cycle_serialises_with_the_optimizer():
    import keras

    from keras_wrn.optimizers import CoupledWeightDecaySGD
    from keras_wrn.recipes import OneCycle

    optimizer = CoupledWeightDecaySGD(learning_rate_schedule("fast", 50, 4))
    restored = CoupledWeightDecaySGD.from_config(optimizer.get_config())
    assert float(restored.learning_rate) == pytest.approx(0.2 / 25)  # the schedule at iteration 0
    schedule = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(OneCycle(1.0, 100, 10)))
    assert [float(schedule(i)) for i in (0, 10, 55, 100)] == pytest.approx([0.04, 1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="warmup_steps=100 must be in \\[0, total_steps=100\\)"):
        OneCycle(1.0, 100, 100)


def test_every_schedule_kind_is_known_and_one_step_runs_work():
    from keras_wrn.recipes import SCHEDULES

    assert {recipe.schedule for recipe in RECIPES.values()} <= set(SCHEDULES)
    assert learning_rate_at("fast", 0, steps_per_epoch=1, epochs=1) == pytest.approx(0.2)  # no room to warm up
