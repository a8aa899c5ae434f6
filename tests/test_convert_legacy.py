"""Legacy Keras 1/2 HDF5 files of the seed repositories, written here in their formats from PyTorch
reference tensors, converted and compared with the PyTorch reference (eval mode)."""

import os

import h5py
import numpy as np
import pytest
import scipy.signal

torch = pytest.importorskip("torch")

from keras_wrn.convert import from_legacy_keras  # noqa: E402
from helpers import reference_forward, reference_params  # noqa: E402


def titu1994_creation_order(n):
    """(kind, torch name) in the order titu1994's wide_residual_network.py creates its layers."""
    order = [("conv", "conv0"), ("bn", "group0.block0.bn0")]  # initial_conv: conv, BN, ReLU
    for g in range(3):
        if g > 0:
            order.append(("bn", f"group{g}.block0.bn0"))  # BN-ReLU before expand_conv
        base = f"group{g}.block0"
        order += [("conv", f"{base}.conv0"), ("bn", f"{base}.bn1"), ("conv", f"{base}.conv1"), ("conv", f"{base}.convdim")]
        for b in range(1, n):
            base = f"group{g}.block{b}"
            order += [("bn", f"{base}.bn0"), ("conv", f"{base}.conv0"), ("bn", f"{base}.bn1"), ("conv", f"{base}.conv1")]
    return order + [("bn", "bn"), ("dense", "fc")]


def asmith26_creation_order(n, params):
    order = [("conv", "conv0")]
    for g in range(3):
        for b in range(n):
            base = f"group{g}.block{b}"
            order += [("bn", f"{base}.bn0"), ("conv", f"{base}.conv0"), ("bn", f"{base}.bn1"), ("conv", f"{base}.conv1")]
            if f"{base}.convdim" in params:
                order.append(("conv", f"{base}.convdim"))
    return order + [("bn", "bn"), ("dense", "fc")]


def write_legacy(path, order, params, keras2, backend, epsilon, dense_kernel=None, offset=0):
    """A save_weights file: Keras 2 (conv2d_N/kernel:0) or Keras 1 (convolution2d_N_W, 'th' layout)."""
    names = {"conv": "conv2d" if keras2 else "convolution2d", "bn": "batch_normalization" if keras2 else "batchnormalization",
             "dense": "dense"}
    counters = {kind: offset for kind in names}
    layer_names = ["input_1"]
    with h5py.File(path, "w") as handle:
        handle.create_group("input_1").attrs["weight_names"] = []
        for kind, source in order:
            counters[kind] += 1
            layer = f"{names[kind]}_{counters[kind]}"
            activation = f"activation_{len(layer_names)}"  # weightless layers are listed too
            layer_names += [layer, activation]
            group = handle.create_group(layer)
            handle.create_group(activation).attrs["weight_names"] = []
            if kind == "conv":
                kernel = params[source].numpy()  # torch (out, in, kh, kw), cross-correlation
                if backend == "theano":
                    kernel = kernel[:, :, ::-1, ::-1]  # what Theano's true convolution needs
                arrays = {"kernel:0" if keras2 else "W": kernel.transpose(2, 3, 1, 0) if keras2 else kernel}
            elif kind == "bn":
                variance = params[f"{source}.running_var"].numpy()
                values = [params[f"{source}.weight"], params[f"{source}.bias"], params[f"{source}.running_mean"]]
                values = [v.numpy() for v in values] + [variance]
                keys = ["gamma", "beta", "moving_mean" if keras2 else "running_mean",
                        "moving_variance" if keras2 else "running_std"]
                arrays = dict(zip([k + ":0" if keras2 else k for k in keys], values))
            else:
                kernel = params["fc.weight"].numpy().T if dense_kernel is None else dense_kernel
                arrays = {"kernel:0": kernel, "bias:0": params["fc.bias"].numpy()} if keras2 else {"W": kernel}
            weight_names = []
            for key, value in arrays.items():
                full = f"{layer}/{key}" if keras2 else f"{layer}_{key}"
                group.create_dataset(full, data=np.ascontiguousarray(value))
                weight_names.append(full.encode())
            group.attrs["weight_names"] = weight_names
        handle.attrs["layer_names"] = [n.encode() for n in layer_names]
        if keras2:
            handle.attrs["keras_version"] = b"2.0.8"
            handle.attrs["backend"] = backend.encode()


def logits(model, x):
    return model.predict(x, verbose=0)


@pytest.mark.parametrize("depth, width, offset", [(10, 2, 0), (16, 4, 7)])
def test_titu1994_wrn_theano_file_matches_the_reference(tmp_path, depth, width, offset):
    params = reference_params(depth, width, 10, seed=3)
    n = (depth - 4) // 6
    path = tmp_path / "wrn.h5"
    write_legacy(path, titu1994_creation_order(n), params, keras2=True, backend="theano", epsilon=1e-5, offset=offset)
    model = from_legacy_keras(path, "titu1994-wrn")
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(reference_forward(torch.from_numpy(x.transpose(0, 3, 1, 2)), params, depth), -1).numpy()
    got = logits(model, x)
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-4


def test_asmith26_backbone_loads_exactly_and_its_head_is_refused(tmp_path):
    depth, width = 16, 2
    params = reference_params(depth, width, 10, seed=4)
    path = tmp_path / "WRN-16-2.h5"
    dense = np.random.default_rng(1).normal(size=(64 * width * 64, 10)).astype(np.float32)
    write_legacy(path, asmith26_creation_order(2, params), params, keras2=False, backend="theano", epsilon=1e-3,
                 dense_kernel=dense)
    with pytest.raises(ValueError, match="does not record its backend .*pass backend='theano'"):
        from_legacy_keras(path, "asmith26-wrn", include_top=False)
    with pytest.raises(ValueError, match="8x8 average pooling with stride 1 .* include_top=False"):
        from_legacy_keras(path, "asmith26-wrn", backend="theano")
    model = from_legacy_keras(path, "asmith26-wrn", backend="theano", include_top=False)
    x = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        expected = reference_forward(torch.from_numpy(x.transpose(0, 3, 1, 2)), params, depth, eps=1e-3,
                                     features=True).numpy().transpose(0, 2, 3, 1)
    got = model.predict(x, verbose=0)
    assert got.shape == (2, 8, 8, 128)
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-4


def test_theano_flip_against_scipy_true_convolution(tmp_path):
    """The stored Theano kernel convolves (scipy.signal.convolve2d); the converted stem correlates."""
    import keras

    params = reference_params(10, 2, 10, seed=5)
    path = tmp_path / "wrn.h5"
    write_legacy(path, titu1994_creation_order(1), params, keras2=True, backend="theano", epsilon=1e-5)
    with h5py.File(path) as handle:
        stored = handle["conv2d_1"]["conv2d_1/kernel:0"][()]  # (3, 3, in, out), as Theano used it
    model = from_legacy_keras(path, "titu1994-wrn")
    stem = keras.Model(model.input, model.get_layer("stem_conv").output)
    x = np.random.default_rng(3).normal(size=(1, 32, 32, 3)).astype(np.float32)
    ours = stem.predict(x, verbose=0)[0]
    for out in range(3):
        true_convolution = sum(scipy.signal.convolve2d(x[0, :, :, i], stored[:, :, i, out], mode="same")
                               for i in range(3))
        np.testing.assert_allclose(ours[:, :, out], true_convolution, rtol=1e-4, atol=1e-5)


def test_refusals(tmp_path):
    params = reference_params(10, 2, 10, seed=6)
    path = tmp_path / "wrn.h5"
    write_legacy(path, titu1994_creation_order(1), params, keras2=True, backend="tensorflow", epsilon=1e-5)
    with pytest.raises(ValueError, match="trained with TensorFlow, whose 'same' padding at stride 2"):
        from_legacy_keras(path, "titu1994-wrn")
    with pytest.raises(ValueError, match="backend='theano' contradicts the file, written with 'tensorflow'"):
        from_legacy_keras(path, "titu1994-wrn", backend="theano")
    with pytest.raises(ValueError, match="titu1994-ror weights are refused: that seed downsamples with max pooling"):
        from_legacy_keras(path, "titu1994-ror")
    with pytest.raises(ValueError, match="depth=16, but the file holds a WRN-10-2"):
        from_legacy_keras(path, "titu1994-wrn", backend="tensorflow", depth=16)
    keras3 = tmp_path / "new.weights.h5"
    import keras_wrn

    keras_wrn.create_model("wrn-16-1", compile=False).save_weights(keras3)
    with pytest.raises(ValueError, match="not a Keras 1/2 weights file"):
        from_legacy_keras(keras3, "titu1994-wrn")
    with pytest.raises(ValueError, match="seed='resnet' is not allowed"):
        from_legacy_keras(path, "resnet")


@pytest.mark.slow
def test_convert_command_for_a_legacy_file(tmp_path):
    import os
    import subprocess
    import sys

    params = reference_params(10, 2, 10, seed=7)
    path = tmp_path / "wrn.h5"
    write_legacy(path, asmith26_creation_order(1, params), params, keras2=False, backend="theano", epsilon=1e-3,
                 dense_kernel=np.zeros((128 * 64, 10), np.float32))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    base = [sys.executable, "-m", "keras_wrn", "convert", str(path)]
    refused = subprocess.run(base + [str(tmp_path / "a.weights.h5"), "--from", "asmith26-wrn", "--backend", "theano"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert refused.returncode == 2 and "include_top=False" in refused.stderr
    assert not (tmp_path / "a.weights.h5").exists()
    done = subprocess.run(base + [str(tmp_path / "b.weights.h5"), "--from", "asmith26-wrn", "--backend", "theano",
                                  "--no-top"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "backbone only" in done.stdout and (tmp_path / "b.json").exists()


def test_convert_command_refuses_an_existing_description_before_converting(tmp_path, capsys):
    from keras_wrn.cli import main

    (tmp_path / "wrn.json").write_text("the user's notes")
    code = main(["convert", str(tmp_path / "missing.pt"), str(tmp_path / "wrn.weights.h5")])
    assert code == 2  # the missing source would be reported only after this check
    out = str(tmp_path / "wrn.weights.h5")
    assert capsys.readouterr().err.strip() == (f"keras-wrn convert: error: OUT={out!r}: {str(tmp_path / 'wrn.json')!r} "
                                               "exists; choose another path (nothing is overwritten).")
    assert os.listdir(tmp_path) == ["wrn.json"] and (tmp_path / "wrn.json").read_text() == "the user's notes"
