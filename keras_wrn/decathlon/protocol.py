"""The reference code's protocol (seed 001): learn domains one after another from one source network.

`TRAINING_MODES` says what trains on a new domain; `domain_model` builds the
model that trains it; `train_decathlon` runs the protocol on Decathlon-format
data (``keras-wrn decathlon train``); `load_source` gives the plain ResNet-26
source network from a released name or a weights file.
"""

import os
import time

import keras

from keras_wrn.adapters import MultiDomainNetwork
from keras_wrn.data.decathlon import decathlon_dataset, load_decathlon, read_mean_std
from keras_wrn.io import locked_directory, write_json
from keras_wrn.models import resnet26
from keras_wrn.optimizers import ADAPTER_WEIGHT_DECAY, CoupledWeightDecaySGD
from keras_wrn.recipes import get_recipe, learning_rate_schedule
from keras_wrn.registry import create_model, model_args
from keras_wrn.stats import count_parameters
from keras_wrn.weights import is_weights_name, weight_file_classes, weights_info

__all__ = ["TRAINING_MODES", "domain_model", "fit_domain", "load_source", "train_decathlon"]

# The reference code's training modes (seed 001): what trains on a new domain.
TRAINING_MODES = {
    "scratch": "a new ResNet-26, every layer trained from random initialisation (10x parameters for 10 domains)",
    "finetune": "a copy of the source network, every layer trained, new head (10x)",
    "bn": "shared frozen source convolutions; the domain's BatchNorms and head train (1x)",
    "series": "shared frozen source convolutions; series adapters, BNs and head train (about 2x)",
    "parallel": "shared frozen source convolutions; parallel adapters, BNs and head train (about 2x)",
}


def domain_model(mode, classes, source=None, network=None, domain="domain", input_shape=(64, 64, 3),
                 width_factor=1.0):
    """The compiled model that trains ``domain`` in ``mode`` (see `TRAINING_MODES`).

    Args:
        source: a plain `keras_wrn.models.resnet26` (the source network, trained), for
            every mode but ``scratch``.
        network: for ``bn``/``series``/``parallel``, an existing `MultiDomainNetwork` of that
            kind to add the domain to (created, and loaded from ``source``, if None).

    Returns:
        ``(model, network)``; ``network`` is None for ``scratch`` and ``finetune``.
    """
    if mode not in TRAINING_MODES:
        raise ValueError(f"mode={mode!r} is not allowed; expected one of {sorted(TRAINING_MODES)}.")
    if mode != "scratch" and source is None:
        raise ValueError(f"mode={mode!r} needs the source network (source=).")
    if mode in ("scratch", "finetune"):
        model = resnet26(classes, input_shape, width_factor=width_factor, name=f"resnet26_{domain}_{mode}")
        if mode == "finetune":
            for layer in model.layers:
                if layer.weights and layer.name != "predictions":
                    layer.set_weights(source.get_layer(layer.name).get_weights())
        return model, None
    adapter = None if mode == "bn" else mode
    if network is None:
        network = MultiDomainNetwork(adapter=adapter, input_shape=input_shape, width_factor=width_factor)
        model = network.add_domain(domain, classes)
        network.load_shared(source)
    else:
        if network.adapter != adapter:
            raise ValueError(f"mode={mode!r} needs adapter={adapter!r}; the network has {network.adapter!r}.")
        model = network.add_domain(domain, classes)
    # The domain's BNs start from the source's statistics, as the reference code initialises them.
    source_names = {layer.name for layer in source.layers}
    for name, layer in network.domain_bank(domain).layers.items():
        if isinstance(layer, keras.layers.BatchNormalization) and name in source_names:
            layer.set_weights(source.get_layer(name).get_weights())
    return model, network


def fit_domain(model, train_set, val_set, steps, epochs, recipe, verbose):
    """Compile ``model`` with the reference recipe (SGD 0.9, weight decay per layer kind), fit, evaluate.

    Returns ``(accuracy on val_set, training seconds)``.
    """
    model.compile(optimizer=CoupledWeightDecaySGD(learning_rate_schedule(recipe, steps, epochs), momentum=0.9,
                                                  nesterov=False, l2=ADAPTER_WEIGHT_DECAY),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    start = time.perf_counter()
    model.fit(train_set, epochs=epochs, verbose=verbose, shuffle=False)  # the dataset shuffles
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(val_set, verbose=0)
    return float(accuracy), seconds


def load_source(source, input_shape, width_factor=None):
    """The plain ResNet-26 source network from a released weights name or a ``.weights.h5`` path.

    A released name brings its width factor from the manifest; for a path,
    ``width_factor`` (default 1.0) must match the file.

    Returns:
        ``(network, width_factor)``.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"source={source!r}: expected a released plain ResNet-26 name or a .weights.h5 path.")
    if is_weights_name(source):
        entry = weights_info(source)
        builder, arguments = model_args(entry["model"])
        if builder is not resnet26 or arguments.get("adapter"):
            raise ValueError(f"source={source!r} holds a {entry['model']} network; the adapter modes need a plain "
                             "ResNet-26 (resnet26, resnet26-w0.5).")
        released = float(entry["arguments"].get("width_factor", arguments.get("width_factor", 1.0)))
        if width_factor is not None and float(width_factor) != released:
            raise ValueError(f"width_factor={width_factor!r} contradicts source={source!r}, released with "
                             f"width_factor={released}.")
        # The protocol normalises each domain with its own statistics, so the source's stay out of the model.
        network = create_model(entry["model"], weights=source, classes=len(entry["class_names"]),
                               input_shape=input_shape, compile=False, include_preprocessing=False)
        return network, released
    width_factor = 1.0 if width_factor is None else float(width_factor)
    try:
        network = resnet26(weight_file_classes(source) or 10, input_shape, width_factor=width_factor, weights=source,
                           compile=False)
    except ValueError as error:
        raise ValueError(f"source={source!r} does not fit a ResNet-26 with width_factor={width_factor}: {error}") from None
    return network, width_factor


def train_decathlon(source_weights, root, domains, mode, out_dir, epochs=None, batch_size=128, width_factor=1.0,
                    verbose=2):
    """The reference protocol on Decathlon-format data: one domain after another from one source network.

    Each domain trains with the ``adapters`` recipe (SGD 0.9, lr 0.1 x0.1 at 2/3 and 5/6 of the
    epochs, weight decay per layer kind) on its train split and is evaluated on its val split.
    Writes ``results.json`` (accuracy, error, trainable parameters, wall time per domain, the
    network's budget) and, for the shared modes, one adapter pack per domain into ``out_dir``.
    """
    if mode not in TRAINING_MODES:
        raise ValueError(f"--mode {mode!r} is not allowed; expected one of {sorted(TRAINING_MODES)}.")
    if mode != "scratch" and source_weights is None:
        raise ValueError(f"--mode {mode} starts every domain from a source network: give --source (a released "
                         "plain ResNet-26 name such as resnet26-w0.5.cifar10-jpeg-e8, or its .weights.h5).")
    with locked_directory(out_dir):
        if os.path.exists(os.path.join(out_dir, "results.json")):
            raise ValueError(f"--out {out_dir!r} already holds results.json; choose another --out.")
        return _train_domains(source_weights, root, domains, mode, out_dir, epochs, batch_size, width_factor,
                              verbose)


def _train_domains(source_weights, root, domains, mode, out_dir, epochs, batch_size, width_factor, verbose):
    recipe = get_recipe("adapters")
    epochs = epochs or recipe.epochs
    input_shape = (None, None, 3)
    source = None
    if mode != "scratch":
        source, width_factor = load_source(source_weights, input_shape, width_factor)
    network, results = None, {}
    for domain in domains:
        train_split, val_split = load_decathlon(root, domain, "train"), load_decathlon(root, domain, "val")
        mean, std = read_mean_std(root, domain)
        train_set = decathlon_dataset(train_split, batch_size, mean, std, training=True)
        val_set = decathlon_dataset(val_split, batch_size, mean, std)
        classes = len(train_split.category_ids)
        model, network = domain_model(mode, classes, source, network, domain, input_shape, width_factor)
        steps = -(-len(train_split.paths) // batch_size)
        accuracy, seconds = fit_domain(model, train_set, val_set, steps, epochs, recipe, verbose)
        results[domain] = dict(mode=mode, classes=classes, train_images=len(train_split.paths),
                               val_images=len(val_split.paths), val_accuracy=float(accuracy),
                               val_error=100.0 * (1.0 - float(accuracy)),
                               trainable_parameters=count_parameters(model.trainable_weights),
                               epochs=epochs, train_seconds=round(seconds, 1))
        if network is not None:
            network.save_pack(domain, os.path.join(out_dir, f"{domain}.pack.h5"), preprocessing=dict(mean=mean, std=std))
        else:
            model.save_weights(os.path.join(out_dir, f"{domain}.weights.h5"))
    summary = dict(mode=mode, source=os.path.abspath(source_weights) if source_weights else None, domains=results,
                   budget=network.budget() if network is not None else None)
    write_json(os.path.join(out_dir, "results.json"), summary)
    return summary
