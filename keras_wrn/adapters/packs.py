"""Adapter packs: one domain's own parameters in a small HDF5 file, tied to its shared backbone.

A pack holds the domain's adapters, BNs (with moving statistics) and head,
keyed ``{layer name}/{variable name}``, and a JSON ``meta`` attribute: the
adapter kind, classes, class names, preprocessing, the architecture record and
the shared backbone's `backbone_fingerprint`, so a pack is refused by a network
with other shared weights.  Loading is all or nothing: every meta field and
every array is checked, and a refused pack leaves the network's domains as
they were.
"""

import hashlib
import json
import os

import h5py
import numpy as np

from keras_wrn.io import atomic_write, open_hdf5

__all__ = ["PACK_FORMAT", "backbone_fingerprint", "save_pack", "load_pack"]

PACK_FORMAT = "keras_wrn-adapter-pack-1"


def backbone_fingerprint(network):
    """sha256 of the shared backbone: architecture, layer names, shapes and weight bytes."""
    digest = hashlib.sha256(json.dumps(dict(network.spec, input_channels=network.input_shape[-1]),
                                       sort_keys=True).encode())
    shared = network.shared.layers
    for name in sorted(shared):
        for weight in shared[name].weights:
            values = np.ascontiguousarray(np.asarray(weight.numpy(), np.float32))
            digest.update(f"{name}:{values.shape}".encode())
            digest.update(values.tobytes())
    return digest.hexdigest()


def save_pack(network, domain, path, class_names=None, preprocessing=None):
    """Write ``domain``'s own parameters to ``path`` atomically; returns the pack's meta."""
    bank = network.domain_bank(domain)
    if class_names is not None and len(class_names) != network.classes[domain]:
        raise ValueError(f"save_pack: {len(class_names)} class_names for {network.classes[domain]} classes.")
    meta = dict(format=PACK_FORMAT, domain=domain, adapter=network.adapter, classes=network.classes[domain],
                class_names=class_names, preprocessing=preprocessing, input_shape=list(network.input_shape),
                positions=network.positions, spec=network.spec, backbone_fingerprint=backbone_fingerprint(network))

    def write(temporary):
        with h5py.File(temporary, "w") as handle:
            handle.attrs["meta"] = json.dumps(meta)
            for name, layer in bank.layers.items():
                for weight in layer.weights:
                    handle.create_dataset(f"{name}/{weight.name}", data=weight.numpy())

    atomic_write(path, write)
    return meta


def _as_json(value):
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_positions(value):
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


# Each field of a pack's meta besides "format": (check, what it must be).  class_names and preprocessing may
# be absent (None).
_META_FIELDS = {
    "domain": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "adapter": (lambda v: v is None or isinstance(v, str), "null or a string"),
    "classes": (_is_count, "an integer >= 1"),
    "input_shape": (lambda v: isinstance(v, list) and len(v) == 3 and all(_is_count(d) for d in v),
                    "a list of three integers >= 1"),
    "positions": (_is_positions, "a string or a list of strings"),
    "spec": (lambda v: isinstance(v, dict), "an object"),
    "backbone_fingerprint": (lambda v: isinstance(v, str) and len(v) == 64
                             and all(c in "0123456789abcdef" for c in v), "a sha256 hex digest"),
    "class_names": (lambda v: v is None or (isinstance(v, list) and all(isinstance(n, str) for n in v)),
                    "null or a list of strings"),
    "preprocessing": (lambda v: v is None or isinstance(v, dict), "null or an object"),
}
_OPTIONAL = ("class_names", "preprocessing")


def _read_pack(path):
    """``(meta text, {key: array})`` of the pack file ``path``; ValueError if it is not a readable pack."""
    with open_hdf5(path, "an adapter pack") as handle:
        if "meta" not in handle.attrs:
            raise ValueError(f"{path}: not an adapter pack (no 'meta' attribute).")
        text = handle.attrs["meta"]
        arrays = {}

        def read(key, item):
            if isinstance(item, h5py.Dataset):
                arrays[key] = np.asarray(item[()])

        handle.visititems(read)
    return text, arrays


def _parse_meta(path, text):
    """The pack's meta as a dict, every field checked; ValueError naming the pack and the field."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        raise ValueError(f"{path}: the adapter pack's 'meta' attribute is {type(text).__name__}; expected JSON text.")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: the adapter pack's 'meta' attribute is not valid JSON ({error}).") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: the adapter pack's 'meta' is JSON of type {type(meta).__name__}; expected an "
                         "object.")
    if meta.get("format") != PACK_FORMAT:
        raise ValueError(f"{path}: not an adapter pack (meta field 'format' is {meta.get('format')!r}; expected "
                         f"{PACK_FORMAT!r}).")
    for field, (check, expected) in _META_FIELDS.items():
        if field not in meta and field in _OPTIONAL:
            meta[field] = None
        elif field not in meta:
            raise ValueError(f"{path}: the adapter pack's meta has no field {field!r} ({expected}); the pack is "
                             "damaged or was not written by save_pack.")
        elif not check(meta[field]):
            raise ValueError(f"{path}: the adapter pack's meta field {field!r} is {meta[field]!r}; expected "
                             f"{expected}.")
    if meta["class_names"] is not None and len(meta["class_names"]) != meta["classes"]:
        raise ValueError(f"{path}: the adapter pack's meta field 'class_names' has {len(meta['class_names'])} "
                         f"names for classes={meta['classes']}.")
    return meta


def _check_network(path, network, meta):
    """Refuse a pack built for another architecture, adapter kind, positions, input shape or backbone."""
    for key, ours in (("adapter", network.adapter), ("spec", network.spec), ("positions", network.positions),
                      ("input_shape", list(network.input_shape))):
        if _as_json(meta[key]) != _as_json(ours):
            raise ValueError(f"{path}: the pack was built with {key}={meta[key]!r}; this network has {ours!r}.")
    fingerprint = backbone_fingerprint(network)
    if meta["backbone_fingerprint"] != fingerprint:
        raise ValueError(f"{path}: the pack was built for backbone {meta['backbone_fingerprint'][:16]}..., this "
                         f"network's shared weights are {fingerprint[:16]}...; load the matching backbone.")


def _matched_arrays(path, arrays, bank):
    """``[(weight, array)]`` for every weight of the domain ``bank``, each array's shape and dtype checked."""
    expected = {f"{name}/{weight.name}": weight for name, layer in bank.layers.items() for weight in layer.weights}
    if set(expected) != set(arrays):
        extra, missing = sorted(set(arrays) - set(expected)), sorted(set(expected) - set(arrays))
        raise ValueError(f"{path}: not this network's domain layers: {len(missing)} arrays missing "
                         f"({missing[:4]}), {len(extra)} unexpected ({extra[:4]}).")
    matched = []
    for key, weight in expected.items():
        array, shape = arrays[key], tuple(weight.shape)
        if array.dtype.kind != "f" or array.shape != shape:
            raise ValueError(f"{path}: {key} holds a {array.dtype} array of shape {array.shape}; the domain's "
                             f"weight is float of shape {shape}.")
        matched.append((weight, array))
    return matched


def load_pack(network, path, domain=None):
    """Add the domain stored in the pack ``path`` to ``network``; returns its model.

    All or nothing: every meta field and every array (name, shape, dtype) is
    checked, and if anything fails after the domain was created it is removed
    again, so ``network.domains`` is as before.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a pack (empty, corrupt or truncated, not HDF5, a meta
            field missing or ill-typed: each named), the domain exists already,
            or built for another architecture, adapter kind, positions, input
            shape or shared backbone (each named), or arrays that do not fit.
    """
    path = os.fspath(path)
    text, arrays = _read_pack(path)
    meta = _parse_meta(path, text)
    _check_network(path, network, meta)
    domain = meta["domain"] if domain is None else domain
    if not isinstance(domain, str) or not domain:
        raise ValueError(f"load_pack: domain={domain!r} must be a non-empty string.")
    if domain in network:
        raise ValueError(f"{path}: domain {domain!r} exists already (domains: {network.domains}); pass domain= "
                         "another name, or remove_domain it first.")
    model = network.add_domain(domain, meta["classes"])
    try:
        for weight, array in _matched_arrays(path, arrays, network.domain_bank(domain)):
            weight.assign(array.astype(weight.dtype))
    except BaseException:
        network.remove_domain(domain)
        raise
    network.pack_meta[domain] = meta
    return model
