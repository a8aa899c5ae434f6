"""The Visual Decathlon score (Rebuffi et al., NIPS 2017).

``S = sum_d a_d * max(0, Emax_d - E_d) ** 2`` over the ten domains, with
``E_d`` the test error (%) on domain d, ``Emax_d = 2 x`` the error of the fully
fine-tuned baseline on d, and ``a_d = 1000 / Emax_d ** 2``: each domain gives at
most 1000 points, the baseline 250 per domain (2500 in all).
"""

import math
import os

import numpy as np

__all__ = ["DOMAINS", "BASELINE_ERRORS", "PUBLISHED", "TRAINING_MODES", "score", "domain_scores", "domain_model",
           "train_decathlon", "compare_modes"]

DOMAINS = ("imagenet12", "aircraft", "cifar100", "daimlerpedcls", "dtd", "gtsrb", "vgg-flowers", "omniglot",
           "svhn", "ucf101")
# Published per-domain accuracies (%) of the table in Rebuffi et al. 2017 (paper-numbers.md),
# in DOMAINS order, with each row's published score S.
PUBLISHED = {
    "feature-extractor": ((59.67, 23.31, 63.11, 80.33, 45.37, 68.16, 73.69, 58.79, 43.54, 26.80), 544),
    "scratch": ((59.87, 57.10, 75.73, 91.20, 37.77, 96.55, 56.30, 88.74, 96.63, 43.27), 1625),
    "finetune": ((59.87, 60.34, 82.12, 92.82, 55.53, 97.53, 81.41, 87.69, 96.55, 51.20), 2500),
    "series-adapters": ((59.67, 56.68, 81.20, 93.88, 50.85, 97.05, 66.24, 89.62, 96.13, 47.45), 2118),
    "parallel-adapters": ((60.32, 64.21, 81.91, 94.73, 58.83, 99.38, 84.68, 89.21, 96.54, 50.94), 3412),
}
# The baseline is the fully fine-tuned network: its errors set each domain's Emax.
BASELINE_ERRORS = {domain: round(100.0 - accuracy, 2) for domain, accuracy in zip(DOMAINS, PUBLISHED["finetune"][0])}


def _check(errors, name):
    if not isinstance(errors, dict) or not errors:
        raise ValueError(f"{name} must be a dict {{domain: error %}}, got {errors!r}.")
    for domain, error in errors.items():
        if not isinstance(error, (int, float)) or isinstance(error, bool) or not 0 <= error <= 100 or math.isnan(error):
            raise ValueError(f"{name}[{domain!r}]={error!r}: expected an error in percent, 0..100.")


def domain_scores(errors, baseline_errors=None):
    """Per-domain points ``{domain: a_d * max(0, Emax_d - E_d) ** 2}``."""
    baseline_errors = BASELINE_ERRORS if baseline_errors is None else baseline_errors
    _check(errors, "errors")
    _check(baseline_errors, "baseline_errors")
    unknown = sorted(set(errors) - set(baseline_errors))
    if unknown:
        raise ValueError(f"errors: unknown domain(s) {unknown}; the baseline has {sorted(baseline_errors)}.")
    points = {}
    for domain, error in errors.items():
        worst = 2.0 * baseline_errors[domain]
        if worst <= 0:
            raise ValueError(f"baseline_errors[{domain!r}] must be > 0 (Emax = 2 x the baseline error).")
        points[domain] = 1000.0 / worst**2 * max(0.0, worst - error) ** 2
    return points


def score(errors, baseline_errors=None, require_all=True):
    """The Decathlon score S of ``errors`` (``{domain: test error %}``).

    Args:
        baseline_errors: ``{domain: error %}`` of the fully fine-tuned baseline;
            defaults to the published one (`BASELINE_ERRORS`).
        require_all: every baseline domain must be given (the challenge's S);
            False scores a subset (at most 1000 points per given domain).
    """
    baseline = BASELINE_ERRORS if baseline_errors is None else baseline_errors
    missing = sorted(set(baseline) - set(errors)) if isinstance(errors, dict) else []
    if require_all and missing:
        raise ValueError(f"errors: missing domain(s) {missing}; pass require_all=False to score a subset.")
    return sum(domain_scores(errors, baseline).values())


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
        source: a plain `keras_wrn.adapters.resnet26` (the source network, trained), for
            every mode but ``scratch``.
        network: for ``bn``/``series``/``parallel``, an existing `MultiDomainNetwork` of that
            kind to add the domain to (created, and loaded from ``source``, if None).

    Returns:
        ``(model, network)``; ``network`` is None for ``scratch`` and ``finetune``.
    """
    from keras_wrn.adapters import MultiDomainNetwork, resnet26

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
    import keras

    source_names = {layer.name for layer in source.layers}
    for name, layer in network._stores[domain].layers.items():
        if isinstance(layer, keras.layers.BatchNormalization) and name in source_names:
            layer.set_weights(source.get_layer(name).get_weights())
    return model, network


def _count(weights):
    return int(sum(int(np.prod(w.shape)) for w in weights))


def _fit_domain(model, train_set, val_set, steps, epochs, recipe, verbose):
    """Compile ``model`` with the reference recipe (SGD 0.9, weight decay per layer kind), fit, evaluate.

    Returns ``(accuracy on val_set, training seconds)``.
    """
    import time

    import keras

    from keras_wrn.adapters import ADAPTER_L2, DEFAULT_L2
    from keras_wrn.optimizers import CoupledWeightDecaySGD
    from keras_wrn.recipes import learning_rate_schedule

    model.compile(optimizer=CoupledWeightDecaySGD(learning_rate_schedule(recipe, steps, epochs), momentum=0.9,
                                                  nesterov=False, l2={"*adapter*": ADAPTER_L2, "*": DEFAULT_L2}),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(train_set, epochs=epochs, verbose=verbose, shuffle=False)  # the dataset shuffles
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(val_set, verbose=0)
    return float(accuracy), seconds


def train_decathlon(source_weights, root, domains, mode, out_dir, epochs=None, batch_size=128, width_factor=1.0,
                    verbose=2):
    """The reference protocol on Decathlon-format data: one domain after another from one source network.

    Each domain trains with the ``adapters`` recipe (SGD 0.9, lr 0.1 x0.1 at 2/3 and 5/6 of the
    epochs, weight decay per layer kind) on its train split and is evaluated on its val split.
    Writes ``results.json`` (accuracy, error, trainable parameters, wall time per domain, the
    network's budget) and, for the shared modes, one adapter pack per domain into ``out_dir``.
    """
    import os

    from keras_wrn.adapters import resnet26
    from keras_wrn.data.decathlon import decathlon_dataset, load_decathlon, read_mean_std
    from keras_wrn.recipes import get_recipe
    from keras_wrn.training import _write_json
    from keras_wrn.weights import weight_file_classes

    if mode not in TRAINING_MODES:
        raise ValueError(f"--mode {mode!r} is not allowed; expected one of {sorted(TRAINING_MODES)}.")
    if os.path.exists(os.path.join(out_dir, "results.json")):
        raise ValueError(f"--out {out_dir!r} already holds results.json; choose another --out.")
    recipe = get_recipe("adapters")
    epochs = epochs or recipe.epochs
    input_shape = (None, None, 3)
    source = None
    if mode != "scratch":
        source = resnet26(weight_file_classes(source_weights) or 10, input_shape, width_factor=width_factor,
                          compile=False)
        source.load_weights(source_weights)
    os.makedirs(out_dir, exist_ok=True)
    network, results = None, {}
    for domain in domains:
        train_split, val_split = load_decathlon(root, domain, "train"), load_decathlon(root, domain, "val")
        mean, std = read_mean_std(root, domain)
        train_set = decathlon_dataset(train_split, batch_size, mean, std, training=True)
        val_set = decathlon_dataset(val_split, batch_size, mean, std)
        classes = len(train_split.category_ids)
        model, network = domain_model(mode, classes, source, network, domain, input_shape, width_factor)
        steps = -(-len(train_split.paths) // batch_size)
        accuracy, seconds = _fit_domain(model, train_set, val_set, steps, epochs, recipe, verbose)
        trainable = _count(model.trainable_weights)
        results[domain] = dict(mode=mode, classes=classes, train_images=len(train_split.paths),
                               val_images=len(val_split.paths), val_accuracy=float(accuracy),
                               val_error=100.0 * (1.0 - float(accuracy)), trainable_parameters=trainable,
                               epochs=epochs, train_seconds=round(seconds, 1))
        if network is not None:
            network.save_pack(domain, os.path.join(out_dir, f"{domain}.pack.h5"), preprocessing=dict(mean=mean, std=std))
        else:
            model.save_weights(os.path.join(out_dir, f"{domain}.weights.h5"))
    summary = dict(mode=mode, source=os.path.abspath(source_weights) if source_weights else None, domains=results,
                   budget=network.budget() if network is not None else None)
    _write_json(os.path.join(out_dir, "results.json"), summary)
    return summary



def _load_source(source, input_shape, width_factor=None):
    """The plain ResNet-26 source network from a released weights name or a ``.weights.h5`` path.

    A released name brings its width factor from the manifest; for a path,
    ``width_factor`` (default 1.0) must match the file.
    """
    from keras_wrn.adapters import resnet26
    from keras_wrn.registry import model_args
    from keras_wrn.weights import is_weights_name, resolve_weights, weight_file_classes

    if is_weights_name(source):
        path, entry = resolve_weights(source)
        builder, arguments = model_args(entry["model"])
        if builder is not resnet26 or arguments.get("adapter"):
            raise ValueError(f"source={source!r} holds a {entry['model']} network; the adapter modes need a plain "
                             "ResNet-26 (resnet26, resnet26-w0.5).")
        released = float(entry["arguments"].get("width_factor", arguments.get("width_factor", 1.0)))
        if width_factor is not None and float(width_factor) != released:
            raise ValueError(f"width_factor={width_factor!r} contradicts source={source!r}, released with "
                             f"width_factor={released}.")
        width_factor = released
    else:
        path = source
        width_factor = 1.0 if width_factor is None else float(width_factor)
    network = resnet26(weight_file_classes(path) or 10, input_shape, width_factor=width_factor, compile=False)
    try:
        network.load_weights(path)
    except ValueError as error:
        raise ValueError(f"source={source!r} does not fit a ResNet-26 with width_factor={width_factor}: {error}") from None
    return network, width_factor


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
    import os
    import time

    import keras

    from keras_wrn.data.augment import make_dataset
    from keras_wrn.data.small_domains import SMALL_DOMAINS, load_small_domain
    from keras_wrn.recipes import get_recipe
    from keras_wrn.training import _write_json

    for mode in modes:
        if mode not in TRAINING_MODES:
            raise ValueError(f"mode {mode!r} is not allowed; expected some of {sorted(TRAINING_MODES)}.")
    for domain in domains:
        if domain not in SMALL_DOMAINS:
            raise ValueError(f"domain {domain!r} is not a bundled small domain; expected some of "
                             f"{sorted(SMALL_DOMAINS)}.")
    if not domains or not modes:
        raise ValueError("compare_modes: give at least one domain and one mode.")
    if os.path.exists(os.path.join(out_dir, "results.json")):
        raise ValueError(f"--out {out_dir!r} already holds results.json; choose another --out.")
    input_shape = (image_size, image_size, 3)
    source_network, width_factor = _load_source(source, input_shape, width_factor)
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
            accuracy, seconds = _fit_domain(model, train_set, test_set, steps, epochs, recipe, verbose)
            row = dict(mode=mode, domain=domain, classes=len(d.class_names), train_images=len(d.x_train),
                       test_images=len(d.x_test), epochs=epochs, batch_size=batch_size,
                       test_accuracy=accuracy, trainable_parameters=_count(model.trainable_weights),
                       domain_parameters=(_count(network.domain_weights(domain)) if network is not None
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
    os.makedirs(out_dir, exist_ok=True)
    _write_json(os.path.join(out_dir, "results.json"), summary)
    with open(os.path.join(out_dir, "results.md"), "w") as handle:
        handle.write(comparison_table(summary))
    return summary


def _budgets(rows, plain, domains):
    """Parameters for the source and every domain together, in units of one source network, per mode."""
    budget = {}
    for mode in dict.fromkeys(row["mode"] for row in rows):
        extra = sum(row["domain_parameters"] for row in rows if row["mode"] == mode)
        budget[mode] = (plain + extra) / plain
    return budget


def comparison_table(summary):
    """The Markdown table of a `compare_modes` summary: one row per domain and mode."""
    lines = [f"Source: `{os.path.basename(str(summary['source']))}` (ResNet-26, width factor "
             f"{summary['width_factor']}, {summary['source_parameters']:,} parameters), "
             f"{summary['image_size']}x{summary['image_size']} inputs, adapters recipe, seed {summary['seed']}.",
             "",
             "| domain | mode | test accuracy | after later domains | merged accuracy | trainable params | "
             "domain params | source + domains (x one net) | train time (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in summary["rows"]:
        merged = f"{100 * row['merged_accuracy']:.2f}%" if "merged_accuracy" in row else "-"
        lines.append(
            f"| {row['domain']} ({row['train_images']}/{row['test_images']}) | {row['mode']} | "
            f"{100 * row['test_accuracy']:.2f}% | {100 * row['accuracy_after_all']:.2f}% | {merged} | "
            f"{row['trainable_parameters']:,} | {row['domain_parameters']:,} | "
            f"{summary['budget'][row['mode']]:.2f}x | {row['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"
