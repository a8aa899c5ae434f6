"""Multi-domain ResNet-26 with residual adapters: sharing, freezing, isolation, budget."""

import numpy as np
import pytest

from keras_wrn.adapters import MultiDomainNetwork, resnet26

SHAPE = (16, 16, 3)


def snapshot(weights):
    return [np.array(w.numpy()) for w in weights]


@pytest.mark.parametrize("adapter", ["series", "parallel", None])
def test_training_one_domain_leaves_shared_and_other_domains_bit_identical(adapter):
    net = MultiDomainNetwork(adapter=adapter, domains={"a": 3, "b": 5}, input_shape=SHAPE, width_factor=0.25)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16,) + SHAPE).astype("float32")
    shared, other = snapshot(net.shared_weights()), snapshot(net.domain_weights("a"))
    own = {w.path: np.array(w.numpy()) for w in net.domain_weights("b")}
    net["b"].fit(x, rng.integers(0, 5, 16), batch_size=8, epochs=1, verbose=0)
    for before, after in zip(shared, snapshot(net.shared_weights())):
        np.testing.assert_array_equal(after, before)
    for before, after in zip(other, snapshot(net.domain_weights("a"))):
        np.testing.assert_array_equal(after, before)
    moved = {w.path for w in net.domain_weights("b") if not np.array_equal(own[w.path], w.numpy())}
    assert any("moving_mean" in p for p in moved) and any("predictions" in p for p in moved)
    if adapter:
        assert any("adapter" in p for p in moved)


def test_shared_layers_are_the_same_objects_in_every_domain_model():
    net = MultiDomainNetwork(adapter="parallel", domains={"a": 3, "b": 5}, input_shape=SHAPE)
    assert net["a"].get_layer("stage2_block1_conv1") is net["b"].get_layer("stage2_block1_conv1")
    assert net["a"].get_layer("stage2_block1_conv1_bn") is not net["b"].get_layer("stage2_block1_conv1_bn")
    assert not net["a"].get_layer("stem_conv").trainable
    assert net["a"].get_layer("stem_conv_adapter").trainable
    trainable = {w.path.split("/")[0] for w in net["b"].trainable_weights}
    assert all(("bn" in n or "adapter" in n or n == "predictions") for n in trainable)


def test_add_domain_and_bad_input():
    net = MultiDomainNetwork(adapter="series", domains={"a": 3}, input_shape=SHAPE)
    model = net.add_domain("letters", 26)
    assert model.output_shape == (None, 26) and net.domains == ["a", "letters"]
    with pytest.raises(ValueError, match="domain 'a' exists already"):
        net.add_domain("a", 3)
    with pytest.raises(KeyError, match="unknown domain 'nope'"):
        net["nope"]
    with pytest.raises(ValueError, match="adapter='serial' is not allowed"):
        MultiDomainNetwork(adapter="serial")
    with pytest.raises(ValueError, match="classes=0 is not allowed"):
        net.add_domain("z", 0)


def test_budget_about_ten_percent_per_domain_and_2x_for_ten_domains():
    net = MultiDomainNetwork(adapter="parallel", domains={f"d{i}": 10 for i in range(10)}, input_shape=SHAPE, compile=False)
    budget = net.budget()
    plain = resnet26(10, input_shape=SHAPE, compile=False).count_params()
    assert budget["shared"] + budget["per_domain"]["d0"] == plain + budget["adapters"]["d0"]
    assert 0.08 < budget["domain_fraction"]["d0"] < 0.12
    assert 1.8 < budget["multiplier"] < 2.1
    assert budget["total"] == budget["shared"] + 10 * budget["per_domain"]["d0"]


def test_plain_resnet26_shapes_and_parameters():
    model = resnet26(10, compile=False)
    assert model.output_shape == (None, 10)
    assert model.get_layer("stage3_block1_shortcut_pad").output.shape[-1] == 256
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    assert len(convs) == 25  # the stem and 24 block convs; the 26th layer is the classifier
    # 3x3 weights: 3*32 stem, then 4 blocks per stage
    expected = 9 * (3 * 32 + 32 * 64 + 64 * 64 * 7 + 64 * 128 + 128 * 128 * 7 + 128 * 256 + 256 * 256 * 7)
    assert sum(layer.kernel.shape.num_elements() if hasattr(layer.kernel.shape, "num_elements") else
               int(np.prod(layer.kernel.shape)) for layer in convs) == expected


def randomise_domain(net, domain, seed):
    """Non-trivial adapter kernels and BN statistics, as after training."""
    rng = np.random.default_rng(seed)
    for weight in net.domain_weights(domain):
        values = np.asarray(weight.numpy())
        if "moving_variance" in weight.path or "gamma" in weight.path:
            weight.assign(rng.uniform(0.5, 1.5, values.shape).astype(values.dtype))
        else:
            weight.assign((0.1 * rng.normal(size=values.shape)).astype(values.dtype))


@pytest.mark.parametrize("adapter", ["parallel", "series"])
@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-5), ("float32", 1e-4)])
def test_merge_gives_the_same_outputs_at_the_plain_cost(adapter, dtype, tolerance):
    import keras

    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        net = MultiDomainNetwork(adapter=adapter, domains={"a": 4}, input_shape=SHAPE, width_factor=0.25, compile=False)
        randomise_domain(net, "a", seed=1)
        merged = net.merge("a")
        x = np.random.default_rng(2).normal(size=(4,) + SHAPE).astype(dtype)
        expected = net["a"].predict(x, verbose=0)
        got = merged.predict(x, verbose=0)
    finally:
        keras.config.set_floatx(previous)
    assert np.abs(got - expected).max() / np.abs(expected).max() < tolerance
    assert merged.count_params() == resnet26(4, input_shape=SHAPE, width_factor=0.25, compile=False).count_params()
    assert not [layer.name for layer in merged.layers if "adapter" in layer.name]


def test_adapter_pack_round_trip_and_refusals(tmp_path):
    net = MultiDomainNetwork(adapter="parallel", domains={"a": 3}, input_shape=SHAPE, width_factor=0.25, compile=False)
    randomise_domain(net, "a", seed=3)
    meta = net.save_pack("a", tmp_path / "a.h5", class_names=["x", "y", "z"], preprocessing={"mean": [1, 2, 3]})
    x = np.random.default_rng(4).normal(size=(2,) + SHAPE).astype("float32")
    expected = net["a"].predict(x, verbose=0)

    other = MultiDomainNetwork(adapter="parallel", input_shape=SHAPE, width_factor=0.25, compile=False)
    other.add_domain("seed", 2)  # creates the shared layers (fresh weights: another backbone)
    with pytest.raises(ValueError, match="built for backbone .* load the matching backbone"):
        other.load_pack(tmp_path / "a.h5")
    for name, layer in other.shared.layers.items():
        layer.set_weights(net.shared.layers[name].get_weights())
    other.load_pack(tmp_path / "a.h5", domain="restored")
    np.testing.assert_array_equal(other["restored"].predict(x, verbose=0), expected)
    assert other.pack_meta["restored"]["class_names"] == ["x", "y", "z"] and meta["classes"] == 3

    fresh = MultiDomainNetwork(adapter="parallel", input_shape=SHAPE, width_factor=0.25, compile=False)
    fresh.load_shared(net["a"])  # no domain yet: the shared layers are made, then loaded
    fresh.load_pack(tmp_path / "a.h5")
    np.testing.assert_array_equal(fresh["a"].predict(x, verbose=0), expected)

    series = MultiDomainNetwork(adapter="series", input_shape=SHAPE, width_factor=0.25, compile=False)
    with pytest.raises(ValueError, match="built with adapter='parallel'; this network has 'series'"):
        series.load_pack(tmp_path / "a.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="junk.h5: not an adapter pack"):
        series.load_pack(tmp_path / "junk.h5")


def test_wrn_ram_seed_call_and_parameter_decomposition():
    from keras_wrn.adapters import wrn_ram

    model = wrn_ram((32, 32, 3), nb_classes=2, N=4, k=4)
    assert model.optimizer is not None and model.output_shape == (None, 2)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen_convs = 432 + (9216 + 36864 + 1024 + 6 * 36864) + (73728 + 147456 + 8192 + 6 * 147456) \
        + (294912 + 589824 + 32768 + 6 * 589824)
    bn_channels = 16 + 9 * (64 + 128 + 256) + (16 + 7 * 64) + (64 + 7 * 128) + (128 + 7 * 256) + 256
    adapter_kernels = 16 * 16 + 9 * (64 * 64 + 128 * 128 + 256 * 256)
    head = 256 * 2 + 2
    assert frozen_convs == 5_839_280 and bn_channels == 7_648  # both equal seed 000's WRN-28-4-RAM
    assert model.count_params() == frozen_convs + 4 * bn_channels + adapter_kernels + head == 6_644_786
    assert trainable == 2 * bn_channels + adapter_kernels + head == 790_210
    net = wrn_ram(depth=16, width=2, domains={"a": 3, "b": 4}, input_shape=(16, 16, 3))
    assert net["a"].get_layer("group2_block1_shortcut_conv") is net["b"].get_layer("group2_block1_shortcut_conv")
    assert "group2_block1_shortcut_conv_adapter" in [layer.name for layer in net["a"].layers]
    with pytest.raises(ValueError, match="depth=15 is not allowed"):
        wrn_ram(depth=15)
    with pytest.raises(ValueError, match=r"got both N=4 \(depth 28\) and depth=16"):
        wrn_ram(N=4, depth=16)


def test_registry_names():
    import keras_wrn

    assert keras_wrn.create_model("resnet26-adapters", classes=5, compile=False).output_shape == (None, 5)
    assert keras_wrn.create_model("resnet26", compile=False).count_params() == 5_825_002
    # half width (16/32/64/128): the CPU-sized source of the adapter comparison
    half = keras_wrn.create_model("resnet26-w0.5", input_shape=(32, 32, 3), compile=False)
    assert half.count_params() == 1_460_986 and half.get_layer("stage3_block4_conv2").kernel.shape == (3, 3, 128, 128)


def test_wrn_ram_parallel_merges_into_a_plain_wrn_and_series_is_refused():
    import keras_wrn
    from keras_wrn.adapters import wrn_ram

    net = wrn_ram(input_shape=(16, 16, 3), depth=10, width=2, adapter="parallel", domains={"a": 3}, compile=False)
    randomise_domain(net, "a", seed=4)
    merged = net.merge("a")
    x = np.random.default_rng(5).normal(size=(4, 16, 16, 3)).astype("float32")
    expected, got = net["a"].predict(x, verbose=0), merged.predict(x, verbose=0)
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-4
    plain = keras_wrn.create_wide_residual_network(depth=10, width=2, classes=3, input_shape=(16, 16, 3))
    assert merged.count_params() == plain.count_params()
    series = wrn_ram(input_shape=(16, 16, 3), depth=10, width=1, adapter="series", domains={"a": 3}, compile=False)
    with pytest.raises(ValueError, match="series adapters cannot be merged"):
        series.merge("a")
