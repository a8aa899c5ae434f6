"""Adapter packs: one domain's own parameters in a small HDF5 file, tied to its shared backbone.

A pack holds the domain's adapters, BNs (with moving statistics) and head,
keyed ``{layer name}/{variable name}``, and a JSON ``meta`` attribute: the
adapter kind, classes, class names, preprocessing, the architecture record and
the shared backbone's `backbone_fingerprint`, so a pack is refused by a network
with other shared weights.
"""

import hashlib
import json

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


def load_pack(network, path, domain=None):
    """Add the domain stored in the pack ``path`` to ``network``; returns its model.

    Raises:
        ValueError: not a pack, or built for another architecture, adapter kind,
            positions, input shape or shared backbone (each named).
    """
    path = str(path)
    try:
        with open_hdf5(path, "an adapter pack") as handle:
            meta = json.loads(handle.attrs["meta"])
            arrays = {}
            handle.visititems(lambda key, item: arrays.__setitem__(key, item[()]) if isinstance(item, h5py.Dataset) else None)
    except (OSError, KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not an adapter pack ({error}).") from None
    if meta.get("format") != PACK_FORMAT:
        raise ValueError(f"{path}: not an adapter pack (format {meta.get('format')!r}).")
    for key, ours in (("adapter", network.adapter), ("spec", network.spec), ("positions", network.positions),
                      ("input_shape", list(network.input_shape))):
        if _as_json(meta[key]) != _as_json(ours):
            raise ValueError(f"{path}: the pack was built with {key}={meta[key]!r}; this network has {ours!r}.")
    fingerprint = backbone_fingerprint(network)
    if meta["backbone_fingerprint"] != fingerprint:
        raise ValueError(f"{path}: the pack was built for backbone {meta['backbone_fingerprint'][:16]}..., this "
                         f"network's shared weights are {fingerprint[:16]}...; load the matching backbone.")
    domain = domain or meta["domain"]
    model = network.add_domain(domain, meta["classes"])
    expected = {f"{name}/{w.name}": w for name, layer in network.domain_bank(domain).layers.items()
                for w in layer.weights}
    if set(expected) != set(arrays):
        network.remove_domain(domain)
        raise ValueError(f"{path}: holds {sorted(set(arrays) ^ set(expected))[:4]}..., not this network's "
                         "domain layers.")
    for key, weight in expected.items():
        weight.assign(arrays[key])
    network.pack_meta[domain] = meta
    return model
