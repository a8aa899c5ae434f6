"""Parameter counts against the papers' tables (../shared/reference/paper-numbers.md)
and against an independent count of the architecture written out by hand."""

import pytest

import keras_wrn
from keras_wrn.stats import model_stats

# WRN paper (Zagoruyko & Komodakis 2016), Table 4 + Tables 5/6 (16-4, 40-10): millions,
# given to 0.1M except WRN-40-10's "56M".
WRN_TABLE = [
    (40, 1, 0.6), (40, 2, 2.2), (40, 4, 8.9), (40, 8, 35.7), (28, 10, 36.5), (28, 12, 52.5),
    (22, 8, 17.2), (22, 10, 26.8), (16, 8, 11.0), (16, 10, 17.1), (16, 4, 2.7), (40, 10, 56),
]

# He et al. 2016, pre-activation ResNets: (registry name, published millions).
# ResNet-1001 takes the longest build of the suite (20-40 s here): CI checks it, the default run does not.
PREACT_TABLE = [("preact-110", 1.7), ("preact-164", 1.7), pytest.param("preact-1001", 10.2, marks=pytest.mark.slow)]


def wrn_trainable_params(depth, k, classes=10):
    """Trainable parameters of WRN-depth-k counted from the paper's description."""
    n = (depth - 4) // 6
    widths = [16 * k, 32 * k, 64 * k]
    total = 3 * 3 * 3 * 16  # stem conv, no bias
    channels = 16
    for width in widths:
        for block in range(n):
            total += 2 * channels  # BN1 gamma, beta
            total += 9 * channels * width  # conv1
            total += 2 * width + 9 * width * width  # BN2 + conv2
            if channels != width or (block == 0 and width != widths[0]):
                total += channels * width  # 1x1 projection
            channels = width
    total += 2 * channels  # final BN
    total += channels * classes + classes  # classifier
    return total


@pytest.mark.parametrize("depth,width,published", WRN_TABLE, ids=lambda v: str(v))
def test_wrn_trainable_params_match_paper(depth, width, published):
    model = keras_wrn.create_wide_residual_network(depth=depth, width=width, compile=False)
    trainable = model_stats(model)["trainable_params"]
    assert trainable == wrn_trainable_params(depth, width)
    decimals = 0 if isinstance(published, int) else 1
    assert round(trainable / 1e6, decimals) == pytest.approx(published)


@pytest.mark.parametrize("name,published", PREACT_TABLE)
def test_preact_params_match_paper(name, published):
    # keras.applications' arguments too (none changes a count): the registry sweep in test_arguments.py
    # leaves ResNet-1001, the slowest build, to this test.
    model = keras_wrn.create_model(name, include_top=True, weights=None, pooling="max", classes=10,
                                   classifier_activation="softmax", name="counted", input_shape=(16, 16, 3),
                                   compile=False)
    assert model.name == "counted" and model.output_shape == (None, 10)
    stats = model_stats(model)
    if name == "preact-1001":
        # He et al.'s 10.2M counts convolution and classifier weights; the
        # BatchNorm scales/offsets (2 per channel of each BN) are not in it:
        # per stage, the first unit 2*(in + 2c) and 110 more of 2*(4c + 2c),
        # c = 16, 32, 64, plus the final BN on 256 channels.
        bn = sum(2 * (first_in + 2 * c) + 110 * 2 * (4 * c + 2 * c)
                 for first_in, c in ((16, 16), (64, 32), (128, 64))) + 2 * 256
        assert bn == 149_216
        assert stats["trainable_params"] - stats["weight_params"] == bn
        assert round(stats["weight_params"] / 1e6, 1) == published
        assert round(stats["trainable_params"] / 1e6, 1) == 10.3
    else:
        assert round(stats["trainable_params"] / 1e6, 1) == published


def test_exact_counts_are_pinned():
    """Exact totals, so that any architectural change is noticed (values from
    this implementation, cross-checked above against the papers)."""
    expected = {
        "wrn-16-1": (175_994, 175_066),
        "wrn-28-10": (36_497_146, 36_479_194),
        "preact-110": (1_738_618, 1_730_522),
        "preact-164": (1_727_482, 1_703_258),
        "ror3-110": (1_645_882, 1_637_690),
        "ror3-wrn-40-2": (2_261_754, 2_256_346),
        "preact-20": (273_658, 272_282),
        "resnet26-w0.5": (1_460_986, 1_457_114),
        "resnet26-adapters": (6_470_218, 6_462_474),
        "wrn-ram-28-4": (6_646_842, 792_266),  # the convolutions are frozen
    }
    for name, (total, trainable) in expected.items():
        stats = model_stats(keras_wrn.create_model(name, compile=False))
        assert (stats["total_params"], stats["trainable_params"]) == (total, trainable), name


def test_wide_preact_variant_is_wrn_16_4():
    """Seed 004's wide pre-act ResNet (depth 14 counted He's way, k=4) is WRN-16-4."""
    wide = model_stats(keras_wrn.create_model("preact-wide-14-4", compile=False))
    wrn = model_stats(keras_wrn.create_model("wrn-16-4", compile=False))
    assert wide == wrn
