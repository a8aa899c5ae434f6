"""Adversarial packs and checkpoints (issue 14): an adapter pack is loaded all or nothing, every meta field
checked (class 9); an empty, truncated, random or corrupt checkpoint -- PyTorch .pt, HDF5 pack, legacy Keras
.h5, Keras .weights.h5 -- gives one ValueError naming the file and what to do, never another exception
(class 11, files). Each test failed on the main before it."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

import keras_wrn
from keras_wrn import weights as released
from keras_wrn.adapters import MultiDomainNetwork
from keras_wrn.convert import from_legacy_keras
from keras_wrn.convert.pytorch_wrn import read_torch_tensors
from keras_wrn.io import open_hdf5

SHAPE = (16, 16, 3)
QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
DAMAGED = r"(empty file \(0 bytes\)|corrupt or truncated HDF5 file)"


def tiny_network(domains=None):
    return MultiDomainNetwork(adapter="parallel", domains=domains, input_shape=SHAPE, width_factor=0.25,
                              compile=False)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A network with domain "a" (random BNs and head) and its valid pack."""
    network = tiny_network({"a": 3})
    rng = np.random.default_rng(3)
    for weight in network.domain_weights("a"):
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    pack = tmp_path_factory.mktemp("packs") / "a.h5"
    network.save_pack("a", pack, class_names=["x", "y", "z"])
    return network, pack


def same_backbone(source_network):
    """A network sharing the source's backbone and holding one domain of its own, "b"."""
    network = tiny_network()
    network.load_shared(source_network["a"])
    network.add_domain("b", 2)
    return network


@pytest.fixture(scope="module")
def target(source):
    """`same_backbone`, shared by the tests that must leave it as it was (each checks it did)."""
    return same_backbone(source[0])


def unchanged(network):
    return network.domains == ["b"] and network.classes == {"b": 2} and network.pack_meta == {}


def copy_of(pack, tmp_path, name="bad.h5"):
    path = tmp_path / name
    path.write_bytes(pack.read_bytes())
    return path


def rewrite_meta(path, change):
    with h5py.File(path, "a") as handle:
        meta = json.loads(handle.attrs["meta"])
        handle.attrs["meta"] = change(meta)


def without(field):
    return lambda meta: json.dumps({k: v for k, v in meta.items() if k != field})


def setting(**fields):
    return lambda meta: json.dumps(dict(meta, **fields))


MALFORMED_META = {
    "meta-not-json": ("meta", lambda meta: "{not json"),
    "meta-a-json-list": ("meta", lambda meta: json.dumps([meta])),
    "meta-a-json-string": ("meta", lambda meta: json.dumps("pack")),
    "meta-not-text": ("meta", lambda meta: 5),
    "no-adapter": ("adapter", without("adapter")),
    "no-spec": ("spec", without("spec")),
    "no-positions": ("positions", without("positions")),
    "no-input_shape": ("input_shape", without("input_shape")),
    "no-classes": ("classes", without("classes")),
    "no-domain": ("domain", without("domain")),
    "no-backbone_fingerprint": ("backbone_fingerprint", without("backbone_fingerprint")),
    "classes-ten": ("classes", setting(classes="ten")),
    "classes-zero": ("classes", setting(classes=0)),
    "domain-a-number": ("domain", setting(domain=5)),
    "fingerprint-a-number": ("backbone_fingerprint", setting(backbone_fingerprint=5)),
    "class_names-too-few": ("class_names", setting(class_names=["x"])),
}


@pytest.mark.parametrize("case", list(MALFORMED_META))
def test_9_malformed_pack_meta_names_the_field_and_registers_nothing(source, target, tmp_path, case):
    field, change = MALFORMED_META[case]
    pack = copy_of(source[1], tmp_path)
    rewrite_meta(pack, change)
    with pytest.raises(ValueError, match=rf"bad\.h5: .*'{field}'"):
        target.load_pack(pack)
    assert unchanged(target)


def test_9_a_pack_for_an_existing_domain_is_refused_naming_the_file(source, tmp_path):
    network = same_backbone(source[0])
    model = network.add_domain("a", 5)
    with pytest.raises(ValueError, match=r"a\.h5: domain 'a' exists already .*pass domain="):
        network.load_pack(source[1])
    assert network.domains == ["b", "a"] and network.classes == {"b": 2, "a": 5} and network["a"] is model


def replace_dataset(path, change):
    """Replace the pack's first domain array by ``change(array)``."""
    with h5py.File(path, "a") as handle:
        keys = []
        handle.visititems(lambda key, item: keys.append(key) if isinstance(item, h5py.Dataset) else None)
        array = handle[keys[0]][()]
        del handle[keys[0]]
        handle.create_dataset(keys[0], data=change(array))
    return keys[0]


@pytest.mark.parametrize("change", [lambda a: np.zeros(a.shape + (2,), a.dtype), lambda a: a.astype("int32"),
                                    lambda a: np.zeros(a.shape[:-1] + (a.shape[-1] + 1,), a.dtype)],
                         ids=["wrong-rank", "integers", "wrong-length"])
def test_9_an_array_that_does_not_fit_leaves_the_domains_as_they_were(source, target, tmp_path, change):
    pack = copy_of(source[1], tmp_path)
    key = replace_dataset(pack, change)
    with pytest.raises(ValueError, match=rf"bad\.h5: {key} holds a .* array of shape"):
        target.load_pack(pack)
    assert unchanged(target)


def test_9_a_valid_pack_loads_after_a_failed_one(source, tmp_path):
    bad = copy_of(source[1], tmp_path)
    replace_dataset(bad, lambda a: np.zeros(a.shape + (2,), a.dtype))
    network = same_backbone(source[0])
    with pytest.raises(ValueError):
        network.load_pack(bad)
    network.load_pack(source[1])
    assert network.domains == ["b", "a"] and network.pack_meta["a"]["class_names"] == ["x", "y", "z"]
    for loaded, saved in zip(network.domain_weights("a"), source[0].domain_weights("a"), strict=True):
        np.testing.assert_array_equal(loaded.numpy(), saved.numpy())


# Class 11: files.


def bad_checkpoints(tmp_path):
    """``{case: path}`` of .pt files that are not checkpoints of tensors."""
    good = tmp_path / "good.pt"
    torch.save({"params": {"conv0": torch.zeros(16, 3, 3, 3)}, "epoch": 3}, good)
    data = good.read_bytes()
    contents = {"empty": b"", "truncated": data[:len(data) // 2],
                "random-bytes": np.random.default_rng(0).bytes(4096)}
    paths = {}
    for case, content in contents.items():
        paths[case] = tmp_path / f"{case}.pt"
        paths[case].write_bytes(content)
    for case, value in (("an-int", 5), ("a-list", [torch.zeros(2)]), ("no-tensors", {"epoch": 3, "lr": 0.1})):
        paths[case] = tmp_path / f"{case}.pt"
        torch.save(value, paths[case])
    return paths


@pytest.mark.parametrize("case", ["empty", "truncated", "random-bytes", "an-int", "a-list", "no-tensors"])
def test_11_a_bad_pt_file_gives_one_error_naming_it_and_what_to_write(tmp_path, case):
    path = bad_checkpoints(tmp_path)[case]
    with pytest.raises(ValueError, match=rf"{case}\.pt: .*torch\.save\("):
        read_torch_tensors(path)


def corrupt_object_header(path, name):
    """Overwrite the first byte (the version) of the object header of ``name`` in the HDF5 file ``path``."""
    with h5py.File(path, "r") as handle:
        address = h5py.h5o.get_info(handle[name].id).addr
    with open(path, "r+b") as stream:
        stream.seek(address)
        stream.write(b"\xff")


def first_dataset(path):
    with h5py.File(path, "r") as handle:
        keys = []
        handle.visititems(lambda key, item: keys.append(key) if isinstance(item, h5py.Dataset) else None)
    return keys[0]


def damage(path, how):
    """Make the valid HDF5 file ``path`` empty, truncated (its first half) or corrupt (an object header)."""
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[:len(data) // 2])
    else:
        corrupt_object_header(path, first_dataset(path))
    return path


def legacy_file(path):
    """A Keras 2 weights file (layer_names / weight_names) with one convolution."""
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = [b"conv2d_1"]
        handle.attrs["keras_version"] = b"2.2.4"
        handle.attrs["backend"] = b"theano"
        handle.create_group("conv2d_1").attrs["weight_names"] = [b"conv2d_1/kernel:0"]
        handle["conv2d_1"].create_dataset("conv2d_1/kernel:0", data=np.zeros((3, 3, 3, 16), "float32"))
    return path


def tiny_wrn(classes=3, **kwargs):
    return keras_wrn.create_wide_residual_network(SHAPE, classes, depth=10, width=1, compile=False, **kwargs)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "model.weights.h5"
    tiny_wrn().save_weights(path)
    return path


def test_11_a_corrupt_object_header_gives_one_error_naming_the_file(tmp_path):
    path = tmp_path / "corrupt.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("group/data", data=np.arange(64, dtype="float32"))
    corrupt_object_header(path, "group/data")
    with h5py.File(path, "r"):  # the file opens: the damage shows only when the object is read
        pass
    with pytest.raises(ValueError, match=r"corrupt\.h5: corrupt or truncated HDF5 file"):
        with open_hdf5(path):
            pass


def test_11_hdf5_errors_while_reading_inside_the_block_give_the_same_error(tmp_path):
    path = tmp_path / "chunk.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("data", data=np.arange(1000, dtype="float32"), chunks=(1000,), fletcher32=True)
        offset = handle["data"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as stream:
        stream.seek(offset + 10)
        stream.write(b"\xff\xff")
    with pytest.raises(ValueError, match=r"chunk\.h5: corrupt or truncated HDF5 file"):
        with open_hdf5(path) as handle:  # the headers are sound; the checksum fails on reading
            handle["data"][()]


@pytest.mark.parametrize("how", ["empty", "truncated", "corrupt-header"])
def test_11_our_hdf5_readers_report_a_damaged_file_in_one_error(source, target, weights_file, tmp_path, how):
    pack = damage(copy_of(source[1], tmp_path, "pack.h5"), how)
    with pytest.raises(ValueError, match=rf"pack\.h5: {DAMAGED}"):
        target.load_pack(pack)
    assert unchanged(target)
    legacy = damage(legacy_file(tmp_path / "legacy.h5"), how)
    with pytest.raises(ValueError, match=rf"legacy\.h5: {DAMAGED}"):
        from_legacy_keras(legacy, "titu1994-wrn")
    weights = damage(copy_of(weights_file, tmp_path, "model.weights.h5"), how)
    with pytest.raises(ValueError, match=rf"model\.weights\.h5: {DAMAGED}"):
        released.weight_file_classes(weights)


@pytest.mark.parametrize("how", ["empty", "truncated", "corrupt-header"])
def test_11_a_damaged_weights_file_is_one_error_for_every_loader(weights_file, tmp_path, how):
    model = tiny_wrn()
    weights = damage(copy_of(weights_file, tmp_path, "model.weights.h5"), how)
    with pytest.raises(ValueError, match=rf"model\.weights\.h5: {DAMAGED}"):
        released.load_weights_file(model, weights, "--weights")
    with pytest.raises(ValueError, match=rf"model\.weights\.h5: {DAMAGED}"):
        tiny_wrn(weights=str(weights))
    with pytest.raises(ValueError, match=rf"model\.weights\.h5: {DAMAGED}"):
        released.load_backbone(model, weights, lambda classes: tiny_wrn(classes or 3))
    with pytest.raises(FileNotFoundError, match="--weights="):
        released.load_weights_file(model, tmp_path / "missing.weights.h5", "--weights")


def bad_convert_source(tmp_path, case):
    """``(path, options, what the message must say)`` of a file ``keras-wrn convert`` cannot read."""
    if case == "corrupt-legacy-h5":
        path = damage(legacy_file(tmp_path / "legacy.h5"), "corrupt-header")
        return path, ["--from", "titu1994-wrn"], "corrupt or truncated HDF5 file"
    return bad_checkpoints(tmp_path)[case.removesuffix("-pt")], [], "torch.save("


@pytest.mark.parametrize("case", ["empty-pt", "an-int-pt", "corrupt-legacy-h5"])
def test_11_convert_command_reports_a_bad_file_in_one_line(tmp_path, capsys, case):
    from keras_wrn.cli import main

    source, options, expected = bad_convert_source(tmp_path, case)
    out = tmp_path / "out.weights.h5"
    assert main(["convert", str(source), str(out), *options]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"keras-wrn convert: error: {source}: ") and expected in error
    assert len(error.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.slow
def test_11_convert_command_process_reports_an_empty_pt_without_a_traceback(tmp_path):
    source, _, expected = bad_convert_source(tmp_path, "empty-pt")
    out = tmp_path / "out.weights.h5"
    result = subprocess.run([sys.executable, "-m", "keras_wrn", "convert", str(source), str(out)],
                            capture_output=True, text=True, env=QUIET, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"keras-wrn convert: error: {source}: " in result.stderr and expected in result.stderr
    assert not out.exists()
