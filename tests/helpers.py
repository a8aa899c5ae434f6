"""Helpers shared by several test files: writers of small datasets in the formats the package reads, a
local HTTP server standing in for the release assets, a walk over the command line's parser, and a PyTorch
reference of the WRN authors' functional network."""

import argparse
import contextlib
import functools
import http.server
import json
import os
import pickle
import threading

import numpy as np
import pytest


# The real CIFAR-10 (JPEG) that developers and CI have beside the checkout; tests that need it are slow.
SHARED_ARCHIVE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10-jpeg.tar.gz")
needs_shared_cifar10 = pytest.mark.skipif(
    not os.path.exists(SHARED_ARCHIVE) and not os.environ.get("CI"),
    reason="../shared/data/cifar10-jpeg.tar.gz is absent (developers' and CI's copy of real CIFAR-10)",
)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def serve_directory(directory):
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port) while in the block; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def write_image_folder(root, classes=3, train_per_class=16, test_per_class=4):
    import keras

    rng = np.random.default_rng(0)
    colours = rng.integers(30, 220, size=(classes, 3))
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for label in range(classes):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                noise = rng.integers(-30, 30, size=(32, 32, 3))
                image = np.clip(colours[label] + noise, 0, 255).astype("uint8")
                keras.utils.save_img(str(folder / f"{index:04d}.png"), image)
    return root


def write_cifar_batch(path, images, labels, label_key=b"labels"):
    """A batch as the official files hold it: a protocol-2 pickle of a bytes-keyed dict."""
    content = {
        b"batch_label": b"testing batch",
        label_key: [int(v) for v in labels],
        b"data": images.transpose(0, 3, 1, 2).reshape(len(images), 3072),
        b"filenames": [f"img{i}.png".encode() for i in range(len(images))],
    }
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)


def write_domain(root, domain, classes, sizes=((90, 120), (72, 72), (150, 80)), test=True):
    import keras

    rng = np.random.default_rng(1)
    categories = [{"id": 10_000_000 * 2 + index + 1, "name": f"c{index}"} for index in range(classes)]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in ("train", "val") + (("test",) if test else ()):
        folder = root / "data" / domain / split
        folder.mkdir(parents=True)
        images, annotations = [], []
        for index, (height, width) in enumerate(sizes):
            name = f"data/{domain}/{split}/{index:07d}.jpg"
            keras.utils.save_img(str(root / name), rng.integers(0, 255, size=(height, width, 3)).astype("uint8"))
            image_id = 5_000 + index
            images.append({"id": image_id, "file_name": name, "width": width, "height": height})
            annotations.append({"id": index, "image_id": image_id, "category_id": categories[index % classes]["id"]})
        content = {"images": images, "categories": categories}
        filename = f"{domain}_{split}.json"
        if split == "test":
            filename = f"{domain}_test_stripped.json"
        else:
            content["annotations"] = annotations
        (root / "annotations" / filename).write_text(json.dumps(content))
    return root


def _torch():
    import torch  # only the converter tests, which skip without PyTorch, use the reference

    return torch


def reference_params(depth, width, classes, seed=0):
    """Random tensors named as pytorch/resnet.py names them, with non-trivial BN statistics."""
    torch = _torch()
    generator = torch.Generator().manual_seed(seed)
    n = (depth - 4) // 6
    widths = [16 * width, 32 * width, 64 * width]

    def conv(out, inp, k):
        return torch.randn(out, inp, k, k, generator=generator) * (2.0 / (inp * k * k)) ** 0.5

    def bn(prefix, channels, params):
        params[f"{prefix}.weight"] = 1 + 0.2 * torch.randn(channels, generator=generator)
        params[f"{prefix}.bias"] = 0.1 * torch.randn(channels, generator=generator)
        params[f"{prefix}.running_mean"] = 0.1 * torch.randn(channels, generator=generator)
        params[f"{prefix}.running_var"] = 0.5 + torch.rand(channels, generator=generator)

    params = {"conv0": conv(16, 3, 3)}
    previous = 16
    for g, out in enumerate(widths):
        for b in range(n):
            inp = previous if b == 0 else out
            base = f"group{g}.block{b}"
            bn(f"{base}.bn0", inp, params)
            params[f"{base}.conv0"] = conv(out, inp, 3)
            bn(f"{base}.bn1", out, params)
            params[f"{base}.conv1"] = conv(out, out, 3)
            if inp != out:
                params[f"{base}.convdim"] = conv(out, inp, 1)
        previous = out
    bn("bn", widths[2], params)
    params["fc.weight"] = 0.1 * torch.randn(classes, widths[2], generator=generator)
    params["fc.bias"] = 0.1 * torch.randn(classes, generator=generator)
    return params


def reference_forward(x, params, depth, eps=1e-5, features=False):
    """The authors' f(input, params, mode=False), written from its description.

    ``features=True`` stops after the final BN-ReLU (the backbone's output).
    """
    F = _torch().nn.functional
    n = (depth - 4) // 6

    def batch_norm(x, prefix):
        return F.batch_norm(x, params[f"{prefix}.running_mean"], params[f"{prefix}.running_var"],
                            params[f"{prefix}.weight"], params[f"{prefix}.bias"], training=False, eps=eps)

    def block(x, base, stride):
        o1 = F.relu(batch_norm(x, f"{base}.bn0"))
        y = F.conv2d(o1, params[f"{base}.conv0"], stride=stride, padding=1)
        o2 = F.relu(batch_norm(y, f"{base}.bn1"))
        z = F.conv2d(o2, params[f"{base}.conv1"], stride=1, padding=1)
        if f"{base}.convdim" in params:
            return z + F.conv2d(o1, params[f"{base}.convdim"], stride=stride)
        return z + x

    out = F.conv2d(x, params["conv0"], padding=1)
    for g, stride in enumerate((1, 2, 2)):
        for b in range(n):
            out = block(out, f"group{g}.block{b}", stride if b == 0 else 1)
    out = F.relu(batch_norm(out, "bn"))
    if features:
        return out
    out = F.avg_pool2d(out, out.shape[-1], 1, 0).flatten(1)
    return F.linear(out, params["fc.weight"], params["fc.bias"])


def parser_actions(parser, path=("keras-wrn",)):
    """``(command path, argparse action)`` for every option and positional of every (sub)command.

    argparse keeps a parser's actions in ``_actions``; it has no public accessor.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parser_actions(sub, path + (name,))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, action


class StopRun(Exception):
    """Raised by `stop_after_first_epoch`: a run stopped at a known point of its commit protocol."""


def stop_after_first_epoch(stage, epoch):
    """An ``on_commit`` hook (`keras_wrn.training.train`) that stops the run once epoch 1 is fully committed."""
    if stage == "logs-written" and epoch == 1:
        raise StopRun()


def read_weights(path):
    """Every dataset of an HDF5 weights file: ``{path inside the file: array}``."""
    import h5py

    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays
