"""Adversarial data files (issue 14): archives whose members escape or outlive their check (class 1),
Decathlon annotations naming files outside their root (class 5) or holding malformed fields (class 11),
CIFAR pickles that claim far more memory than the file holds (class 15). Each test failed on the main
before it."""

import io
import json
import os
import pickle
import stat
import struct
import tarfile
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from helpers import write_cifar_batch, write_domain
from keras_wrn.data import extract_archive, load_cifar, load_decathlon


def add_member(tar, name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


@pytest.fixture
def outside(tmp_path):
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "target.txt").write_text("original")
    return folder


def path_max_chain_tar(archive, target):
    """The CVE-2025-4517 recipe: directories of 247 characters, each reached through a one-letter link,
    deep enough that the chain's expansion exceeds PATH_MAX, so os.path.realpath (on which tarfile's "data"
    filter relies) stops resolving it while the kernel follows it; a link through it climbs out of
    ``target`` and a regular file is written through that link."""
    component = "d" * 247
    steps = (4096 - len(str(target)) - 2) // (len(component) + 1)
    letters = "abcdefghijklmnopqrstuvwxyz"[:steps]
    assert len(str(target)) + steps * (len(component) + 1) + 255 > 4096, "the chain must exceed PATH_MAX"
    with tarfile.open(archive, "w") as tar:
        path = ""
        for letter in letters:
            add_member(tar, os.path.join(path, component), tarfile.DIRTYPE, mode=0o755)
            add_member(tar, os.path.join(path, letter), tarfile.SYMTYPE, link=component)
            path = os.path.join(path, component)
        chain = os.path.join(*letters, "l" * 254)
        add_member(tar, chain, tarfile.SYMTYPE, link="../" * steps)
        add_member(tar, "escape", tarfile.SYMTYPE, link=chain + "/../outside")
        add_member(tar, "escape/target.txt", data=b"overwritten from the archive")


def test_1_tar_symlink_chain_longer_than_path_max_is_refused(tmp_path, outside):
    target = tmp_path / "t"
    path_max_chain_tar(tmp_path / "chain.tar", target)
    with pytest.raises(ValueError, match=r"chain\.tar: unsafe member refused.*'a' is a symbolic link"):
        extract_archive(tmp_path / "chain.tar", target)
    assert (outside / "target.txt").read_text() == "original"
    assert not target.exists() or not any(target.iterdir())


@pytest.mark.parametrize("case", ["link entry", "file through the link"])
def test_1_zip_symlink_entries_are_refused(tmp_path, outside, case):
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zipped:
        zipped.writestr("train/", "")
        zipped.writestr("train/cat/0000.jpg", b"jpeg")
    extract_archive(plain, tmp_path / "plain")
    assert (tmp_path / "plain" / "train" / "cat" / "0000.jpg").read_bytes() == b"jpeg"

    archive = tmp_path / "links.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        link = zipfile.ZipInfo("link")
        link.create_system, link.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
        zipped.writestr(link, "../outside" if case == "file through the link" else "../outside/target.txt")
        if case == "file through the link":
            zipped.writestr("link/target.txt", "overwritten from the archive")
    with pytest.raises(ValueError, match=r"links\.zip: unsafe member refused.*'link' is a symbolic link"):
        extract_archive(archive, tmp_path / "out")
    assert (outside / "target.txt").read_text() == "original"
    assert not (tmp_path / "out").exists()


def test_1_tar_hard_links_are_refused_and_plain_tars_extract_again(tmp_path):
    plain = tmp_path / "plain.tar.gz"
    with tarfile.open(plain, "w:gz") as tar:
        add_member(tar, "./", tarfile.DIRTYPE, mode=0o755)
        add_member(tar, "./train/cat/0000.jpg", data=b"jpeg")
        add_member(tar, "./tools/run.sh", data=b"#!/bin/sh\n", mode=0o755)
    for _ in range(2):  # a second extraction replaces the files
        extract_archive(plain, tmp_path / "plain")
    assert (tmp_path / "plain" / "train" / "cat" / "0000.jpg").read_bytes() == b"jpeg"
    assert os.access(tmp_path / "plain" / "tools" / "run.sh", os.X_OK)

    archive = tmp_path / "hard.tar"
    with tarfile.open(archive, "w") as tar:
        add_member(tar, "a.txt", data=b"a")
        add_member(tar, "b.txt", tarfile.LNKTYPE, link="a.txt")
    with pytest.raises(ValueError, match=r"hard\.tar: unsafe member refused.*'b\.txt' is a hard link"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


TAR_CASES = {
    "character device": dict(name="dev", kind=tarfile.CHRTYPE, reason="is a device"),
    "fifo": dict(name="pipe", kind=tarfile.FIFOTYPE, reason="is a fifo"),
    "parent": dict(name="../escaped.txt", reason="has a '..' component"),
    "parent inside": dict(name="a/../../escaped.txt", reason="has a '..' component"),
    "absolute": dict(name="/tmp/escaped.txt", reason="is an absolute name"),
    "backslash": dict(name="..\\escaped.txt", reason="has a backslash"),
    "named twice": dict(name="ok.txt", reason="is named twice"),
    "file as directory": dict(name="ok.txt/child.txt", reason="is a file that other members need as a directory"),
}
ZIP_CASES = {
    "backslash": dict(name="..\\..\\escaped.txt", reason="has a backslash"),
    "drive": dict(name="C:/escaped.txt", reason="is an absolute name"),
}


@pytest.mark.parametrize("form,case", [("tar", c) for c in TAR_CASES] + [("zip", c) for c in ZIP_CASES])
def test_1_one_unsafe_member_refuses_the_archive_before_anything_is_written(tmp_path, form, case):
    spec = (TAR_CASES if form == "tar" else ZIP_CASES)[case]
    archive = tmp_path / f"bad.{form}"
    if form == "tar":
        with tarfile.open(archive, "w") as tar:
            add_member(tar, "ok.txt", data=b"fine")
            add_member(tar, spec["name"], spec.get("kind", tarfile.REGTYPE), data=b"x")
    else:
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("ok.txt", "fine")
            zipped.writestr(spec["name"], "x")
    target = tmp_path / "deep" / "out"
    with pytest.raises(ValueError, match=r"bad\.(tar|zip): unsafe member refused") as error:
        extract_archive(archive, target)
    assert not target.exists()
    assert not (tmp_path / "deep" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    shown = "ok.txt" if case in ("named twice", "file as directory") else spec["name"]
    assert f"The unsafe member {shown!r} {spec['reason']}" in str(error.value)


@pytest.mark.parametrize("where", ["directory link out", "directory link inside", "file link out"])
def test_1_links_already_in_the_target_are_never_followed(tmp_path, outside, where):
    target = tmp_path / "out"
    (target / "real").mkdir(parents=True)
    if where == "directory link out":
        (target / "data").symlink_to(outside)
        member = "data/target.txt"
    elif where == "directory link inside":
        (target / "data").symlink_to(target / "real")
        member = "data/target.txt"
    else:
        (target / "target.txt").symlink_to(outside / "target.txt")
        member = "target.txt"
    archive = tmp_path / "through.tar"
    with tarfile.open(archive, "w") as tar:
        add_member(tar, "ok.txt", data=b"fine")
        add_member(tar, member, data=b"overwritten from the archive")
    with pytest.raises(ValueError, match=r"through\.tar: unsafe member refused") as error:
        extract_archive(archive, target)
    assert (outside / "target.txt").read_text() == "original"
    assert not (target / "ok.txt").exists() and not (target / "real" / "target.txt").exists()
    assert f"The unsafe member {member!r} would be written through" in str(error.value)
    assert "a link already in the target" in str(error.value)


@pytest.fixture
def decathlon(tmp_path):
    root = tmp_path / "root"
    write_domain(root, "aircraft", 100, test=False)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"a file outside the data root")
    return root, secret


def edit_annotations(root, change, name="aircraft_train.json"):
    path = root / "annotations" / name
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


@pytest.mark.parametrize("case", ["parent", "absolute", "middle entry", "file link", "directory link"])
def test_5_annotation_file_names_outside_the_root_are_refused(decathlon, case):
    root, secret = decathlon
    train = root / "data" / "aircraft" / "train"
    names = {
        "parent": (0, "../secret.jpg"),
        "absolute": (2, str(secret)),
        "middle entry": (1, "data/aircraft/../../../secret.jpg"),
        "file link": (1, "data/aircraft/train/link.jpg"),
        "directory link": (2, "data/aircraft/linked/secret.jpg"),
    }
    index, name = names[case]
    (train / "link.jpg").symlink_to(secret)
    (root / "data" / "aircraft" / "linked").symlink_to(secret.parent)
    edit_annotations(root, lambda c: c["images"][index].update(file_name=name))
    refused = r"aircraft_train\.json: 1 of 3 image file_names are not inside the data root"
    with pytest.raises(ValueError, match=refused) as error:
        load_decathlon(root, "aircraft", "train")
    assert repr(name) in str(error.value)


def test_5_every_file_name_is_checked_and_the_bad_ones_counted(decathlon):
    root, secret = decathlon

    def change(content):
        content["images"][0]["file_name"] = "../secret.jpg"
        content["images"][1]["file_name"] = str(secret)

    edit_annotations(root, change)
    with pytest.raises(ValueError, match=r"aircraft_train\.json: 2 of 3 image file_names .* e\.g\. '\.\./secret\.jpg'"):
        load_decathlon(root, "aircraft", "train")
    assert len(load_decathlon(root, "aircraft", "val").paths) == 3


MALFORMED = {
    "category_id missing": (lambda c: c["annotations"][1].pop("category_id"), "annotation 1 has no 'category_id'"),
    "category_id null": (lambda c: c["annotations"][1].update(category_id=None), "'category_id' None; expected an int"),
    "category_id string": (lambda c: c["annotations"][1].update(category_id="20000002"), "'category_id' '20000002'"),
    "category_id float": (lambda c: c["annotations"][1].update(category_id=20000002.0), "'category_id' 20000002.0"),
    "image_id missing": (lambda c: c["annotations"][0].pop("image_id"), "annotation 0 has no 'image_id'"),
    "annotations an object": (lambda c: c.update(annotations={"0": c["annotations"][0]}), "an 'annotations' list"),
    "annotation not an object": (lambda c: c["annotations"].__setitem__(2, 7), "annotation 2 must be an object"),
    "file_name null": (lambda c: c["images"][1].update(file_name=None), "image 1 has 'file_name' None"),
    "image id string": (lambda c: c["images"][1].update(id="5001"), "image 1 has 'id' '5001'"),
    "category id string": (lambda c: c["categories"][0].update(id="20000001"), "category 0 has 'id' '20000001'"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_11_malformed_decathlon_annotations_give_one_value_error_naming_the_field(decathlon, case):
    root, _ = decathlon
    change, message = MALFORMED[case]
    edit_annotations(root, change)
    with pytest.raises(ValueError, match=r"aircraft_train\.json: .*" + message) as error:
        load_decathlon(root, "aircraft", "train")
    assert type(error.value) is ValueError


def cifar_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    return folder


def global_(module, name):
    return f"c{module}\n{name}\n".encode()


def fragment(value):
    """``value`` as opcodes to splice into a protocol-2 pickle (no PROTO, no STOP)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def empty_array(shape=(0,), typecode=b"b"):
    """NumPy's first step of unpickling an array, with the shape and type code the pickle chooses."""
    return (global_("numpy._core.multiarray", "_reconstruct") + global_("numpy", "ndarray") + fragment(shape)
            + fragment(typecode) + b"\x87R")


TERABYTES = {  # each claims 10**9 x 3072 bytes = 2.79 TiB
    "_reconstruct shape": b"\x80\x02" + empty_array((10**9, 3072)) + b".",
    "ndarray call": b"\x80\x02" + global_("numpy", "ndarray") + fragment(((10**9, 3072), "u1")) + b"R.",
    "sub-array dtype": (b"\x80\x02" + global_("numpy._core.multiarray", "_reconstruct") + global_("numpy", "ndarray")
                        + fragment((3072,)) + global_("numpy", "dtype") + fragment((("u1", (1000, 10**6)),)) + b"R"
                        + b"\x87R."),
    "bytes8 length": b"\x80\x04\x8e" + struct.pack("<Q", 3072 * 10**9) + b".",
}


@pytest.mark.parametrize("case", list(TERABYTES))
def test_15_tiny_pickle_claiming_terabytes_is_refused_without_allocating(tmp_path, case):
    (cifar_folder(tmp_path) / "test_batch").write_bytes(TERABYTES[case])
    assert len(TERABYTES[case]) < 200
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=r"test_batch: not a CIFAR python batch"):
            load_cifar("cifar10", "test", directory=tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20 and time.perf_counter() - started < 5


def test_15_array_shapes_are_bounded_by_the_bytes_in_the_file(tmp_path):
    folder = cifar_folder(tmp_path)
    # A test batch of 10000 images (30 MB) in 20 kB: a uint8 array that never receives its bytes.
    no_bytes = (b"\x80\x02}(" + fragment(b"data") + empty_array((10_000, 3072), b"B") + fragment(b"labels")
                + fragment([0] * 10_000) + b"u.")
    assert len(no_bytes) < 25_000
    (folder / "test_batch").write_bytes(no_bytes)
    refused = r"test_batch: not a CIFAR python batch "
    with pytest.raises(ValueError, match=refused + r".*_reconstruct with shape \(10000, 3072\)"):
        load_cifar("cifar10", "test", directory=tmp_path)
    # An array whose state claims a shape its few bytes cannot fill.
    state = (1, (10_000, 3072), np.dtype("u1"), False, b"\x00" * 10)
    small = b"\x80\x02}(" + fragment(b"data") + empty_array() + fragment(state) + b"b" + fragment(b"labels") + b"]u."
    (folder / "test_batch").write_bytes(small)
    with pytest.raises(ValueError, match=refused + r".*needs 30720000 bytes; the pickle holds 10"):
        load_cifar("cifar10", "test", directory=tmp_path)


class _SharedPayload:
    """Pickles as an array whose bytes object is shared (memoised) with every other one."""

    payload = bytes(100 * 3072)

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (0,), b"b"), (1, (100, 3072), np.dtype("u1"), False, self.payload)


def test_15_arrays_sharing_one_payload_are_bounded_by_the_file_size(tmp_path):
    arrays = [_SharedPayload() for _ in range(40)]
    blob = pickle.dumps({b"data": arrays[0], b"labels": [0] * 100, b"copies": arrays[1:]}, protocol=3)
    assert len(blob) < 2 * len(_SharedPayload.payload)
    (cifar_folder(tmp_path) / "test_batch").write_bytes(blob)
    with pytest.raises(ValueError, match=r"test_batch: not a CIFAR python batch .*more array bytes than the \d+ bytes"):
        load_cifar("cifar10", "test", directory=tmp_path)


def python2_batch(images, labels):
    """A batch as Python 2's cPickle wrote the official files: byte-string keys, dtype and payload."""

    def string(value):
        return b"U" + bytes([len(value)]) + value if len(value) < 256 else b"T" + struct.pack("<I", len(value)) + value

    def integer(value):
        return b"K" + bytes([value]) if value < 256 else b"J" + struct.pack("<i", value)

    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072).tobytes()
    array = (global_("numpy.core.multiarray", "_reconstruct") + global_("numpy", "ndarray") + b"K\x00\x85"
             + string(b"b") + b"\x87R(K\x01" + integer(len(images)) + integer(3072) + b"\x86"
             + global_("numpy", "dtype") + string(b"u1") + b"K\x00K\x01\x87R(K\x03" + string(b"|")
             + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89" + string(data) + b"tb")
    listed = b"](" + b"".join(integer(int(label)) for label in labels) + b"e"
    return b"\x80\x02}(" + string(b"data") + array + string(b"labels") + listed + b"u."


def test_15_batches_of_more_images_than_the_format_are_refused(tmp_path):
    folder = cifar_folder(tmp_path)
    images = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    (folder / "test_batch").write_bytes(python2_batch(images, [1, 2, 3]))
    loaded, labels = load_cifar("cifar10", "test", directory=tmp_path)
    np.testing.assert_array_equal(loaded, images)
    assert labels.tolist() == [1, 2, 3] and type(loaded) is np.ndarray

    write_cifar_batch(folder / "test_batch", np.zeros((10_001, 32, 32, 3), np.uint8), [0] * 10_001)
    too_many = r"test_batch: b'data' holds 10001 images; a CIFAR test batch file holds at most 10000"
    with pytest.raises(ValueError, match=too_many):
        load_cifar("cifar10", "test", directory=tmp_path)
