"""The adapter comparison: every training mode on small real domains from one source ResNet-26.

``keras-wrn decathlon compare``: the Decathlon's own files are not distributed
with the package, so the target domains are real image sets that ship inside
dependencies (`keras_wrn.data.small_domains`: scikit-learn's digits,
scikit-image's LFW faces).  Each mode learns the domains one after another, as
the reference protocol does (`keras_wrn.decathlon.protocol`).
"""

import os
import time

import keras
import numpy as np

from keras_wrn.data.augment import make_dataset
from keras_wrn.data.small_domains import SMALL_DOMAINS, load_small_domain
from keras_wrn.decathlon.protocol import TRAINING_MODES, domain_model, fit_domain, load_source
from keras_wrn.decathlon.report import comparison_table
from keras_wrn.io import atomic_write, locked_directory, write_json
from keras_wrn.recipes import get_recipe
from keras_wrn.stats import count_parameters

__all__ = ["compare_modes"]


def _write_text(path, text):
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(text)


def compare_modes(source, out_dir, domains=("digits", "lfw-faces"), modes=tuple(TRAINING_MODES), epochs=30,
                  batch_size=32, image_size=32, width_factor=None, seed=0, verbose=0):
    """Every training mode on small real domains from one source ResNet-26: the adapter comparison.

    For each mode, the domains are learned one after another, as the reference protocol
    does (the shared modes add each domain to one `MultiDomainNetwork`), with the
    ``adapters`` recipe scaled to ``epochs``; data come from
    `keras_wrn.data.load_small_domain` (``image_size`` square, normalised by the domain's
    own training statistics).  Besides test accuracy, trainable parameters and wall time,
    each row records the checks that make the shared modes what they claim:

    - ``accuracy_after_all``: the domain's test accuracy again after the later domains
      trained (equal: no other domain changes its parameters);
    - ``shared_unchanged``: every shared weight still bit-equal to the source network's;
    - ``merged_accuracy`` and ``merged_max_abs_logit_diff`` (series/parallel): the
      adapter-free `MultiDomainNetwork.merge` network on the same test images.

    Writes ``results.json`` and ``results.md`` (the table) into ``out_dir``.

    Args:
        source: a released weights name (e.g. ``"resnet26-w0.5.cifar10-jpeg-e8"``) or a
            ``.weights.h5`` of a plain ResNet-26 trained on the source domain.
        modes: a subset of `TRAINING_MODES`.
        width_factor: only with a path (a released name knows its own).
    """
    for mode in modes:
        if mode not in TRAINING_MODES:
            raise ValueError(f"mode {mode!r} is not allowed; expected some of {sorted(TRAINING_MODES)}.")
    for domain in domains:
        if domain not in SMALL_DOMAINS:
            raise ValueError(f"domain {domain!r} is not a bundled small domain; expected some of "
                             f"{sorted(SMALL_DOMAINS)}.")
    if not domains or not modes:
        raise ValueError("compare_modes: give at least one domain and one mode.")
    with locked_directory(out_dir):
        if os.path.exists(os.path.join(out_dir, "results.json")):
            raise ValueError(f"--out {out_dir!r} already holds results.json; choose another --out.")
        return _compare(source, out_dir, domains, modes, epochs, batch_size, image_size, width_factor, seed, verbose)


def _compare(source, out_dir, domains, modes, epochs, batch_size, image_size, width_factor, seed, verbose):
    input_shape = (image_size, image_size, 3)
    source_network, width_factor = load_source(source, input_shape, width_factor)
    source_shared = {layer.name: [w.copy() for w in layer.get_weights()]
                     for layer in source_network.layers if isinstance(layer, keras.layers.Conv2D)}
    recipe = get_recipe("adapters")
    data = {domain: load_small_domain(domain, image_size, seed=seed) for domain in domains}
    rows = []
    for mode in modes:
        network, trained = None, []
        for domain in domains:
            d = data[domain]
            mean, std = d.x_train.reshape(-1, 3).mean(0), d.x_train.reshape(-1, 3).std(0)
            keras.utils.set_random_seed(seed)
            train_set = make_dataset(d.x_train, d.y_train, batch_size, mean, std, d.augmentation, shuffle=True,
                                     seed=seed)
            test_set = make_dataset(d.x_test, d.y_test, 500, mean, std)
            model, network = domain_model(mode, len(d.class_names), source_network, network, domain, input_shape,
                                          width_factor)
            steps = -(-len(d.x_train) // batch_size)
            start = time.perf_counter()
            accuracy, seconds = fit_domain(model, train_set, test_set, steps, epochs, recipe, verbose)
            row = dict(mode=mode, domain=domain, classes=len(d.class_names), train_images=len(d.x_train),
                       test_images=len(d.x_test), epochs=epochs, batch_size=batch_size,
                       test_accuracy=accuracy, trainable_parameters=count_parameters(model.trainable_weights),
                       domain_parameters=(count_parameters(network.domain_weights(domain)) if network is not None
                                          else model.count_params()),
                       train_seconds=round(seconds, 1), wall_seconds=None)
            if mode in ("series", "parallel"):
                merged = network.merge(domain)
                images = np.concatenate([x for x, _ in test_set.as_numpy_iterator()])
                logits, merged_logits = model.predict(images, verbose=0), merged.predict(images, verbose=0)
                row["merged_accuracy"] = float(np.mean(np.argmax(merged_logits, -1) == d.y_test))
                row["merged_max_abs_logit_diff"] = float(np.max(np.abs(logits - merged_logits)))
                row["merged_parameters"] = merged.count_params()
            row["wall_seconds"] = round(time.perf_counter() - start, 1)
            rows.append(row)
            print(f"compare: {len(rows)}/{len(modes) * len(domains)} {mode} on {domain}: test accuracy "
                  f"{100 * accuracy:.2f}% after {row['wall_seconds']:.0f} s", flush=True)
            trained.append((row, model, test_set))
        for row, model, test_set in trained:  # after every later domain has trained
            row["accuracy_after_all"] = float(model.evaluate(test_set, verbose=0)[1])
        if network is not None:
            row_budget = network.budget()
            unchanged = all(
                all(np.array_equal(a, b) for a, b in zip(network.shared.layers[name].get_weights(), weights))
                for name, weights in source_shared.items() if name in network.shared.layers)
            for row, _, _ in trained:
                row["shared_unchanged"] = bool(unchanged)
                row["shared_parameters"] = row_budget["shared"]
    plain = source_network.count_params()
    summary = dict(source=source if not os.path.exists(str(source)) else os.path.abspath(source),
                   width_factor=width_factor, image_size=image_size, source_parameters=plain, seed=seed,
                   recipe="adapters", rows=rows, budget=_budgets(rows, plain, domains))
    write_json(os.path.join(out_dir, "results.json"), summary)
    atomic_write(os.path.join(out_dir, "results.md"),
                 lambda temporary: _write_text(temporary, comparison_table(summary)))
    return summary



def _budgets(rows, plain, domains):
    """Parameters for the source and every domain together, in units of one source network, per mode."""
    budget = {}
    for mode in dict.fromkeys(row["mode"] for row in rows):
        extra = sum(row["domain_parameters"] for row in rows if row["mode"] == mode)
        budget[mode] = (plain + extra) / plain
    return budget
