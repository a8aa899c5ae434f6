"""Training and inference throughput: keras_wrn vs plain Keras vs PyTorch eager, per precision, and the true peak.

    python benchmarks/run.py [--models wrn-16-1,wrn-16-4,...] [--precisions float32,bfloat16] [--data CIFAR10_JPEG_DIR]
                             [--out benchmarks/results.md]
    python benchmarks/run.py --quick      # a smoke run (tests use it); its numbers mean nothing

Every figure is taken in a fresh worker process (``--worker``), one model, one
implementation and one precision at a time, so TensorFlow's and PyTorch's thread
pools never compete and each process's peak resident memory is that
configuration's alone.

- Throughput: batch 128 of 32x32x3 random inputs; one warm-up block of steps
  (tracing, allocation), then ``--repeats`` blocks of ``--steps`` steps, images/s
  per block; the table gives the median and the min-max spread.  ``--rounds N``
  measures every configuration in N worker processes, the task list run N times
  in alternating order (forward, backward, ...), and pools their blocks: on a
  shared 2-core VM two processes of one configuration have differed by up to 45%
  (ResNet-26 inference, 2026-11-27), which a single process per row cannot tell
  from a difference between rows.  Keras models train
  with ``model.fit`` on a repeated `tf.data` batch (what a user runs), timed from
  the epoch's first step to its last (callbacks): a ``fit`` call's own setup and
  teardown, paid once per epoch in real training, sometimes costs 2.4 s here,
  which would swamp a 20-step block.  Inference is ``predict_on_batch``.  PyTorch
  runs the usual eager loop (``zero_grad``, forward, ``backward``, SGD ``step``;
  ``torch.no_grad`` for inference) in ``channels_last`` memory format, model and
  inputs: its fastest layout on CPUs (oneDNN's NHWC kernels).
- Precisions (``--precisions``): float32 always; by default also bfloat16 where
  `keras_wrn.precision.native_bfloat16` finds a unit for it, and float16 on a GPU
  or a CPU with AMX-FP16 (elsewhere it is emulated, slower than float32).  keras_wrn
  builds each model with ``precision=`` (Keras' mixed policies: float32
  variables, BatchNorm statistics, classifier and loss; float16 adds Keras' loss
  scaling); PyTorch runs forward and loss under ``torch.autocast`` of the same
  dtype (CPU autocast: no gradient scaler).  Precisions other than float32 are
  measured for ``--precision-models`` only, keras_wrn and PyTorch only (plain Keras
  and the other backends stay float32), and "x PyTorch" compares with PyTorch at
  the same precision.  A model keras_wrn cannot build at a precision is listed
  under the table instead.
- Arithmetic: GFLOP/s = images/s x 2 FLOPs per multiply-accumulate
  (`keras_wrn.model_stats`) x 3 for a training step (forward, input gradients,
  weight gradients) or x 1 for inference, given as a percentage of two references
  of the row's own precision: the CPU's true peak (`peak`: cores x clock under
  load x FLOP/cycle/core of the best unit the ISA has for the precision; the
  derivation and how the clock was obtained are in the report's header), and the
  fastest matrix product measured in the same run (2048^3; NumPy, TensorFlow and
  PyTorch at float32, TensorFlow and PyTorch at bfloat16/float16), the rate a
  well-tuned kernel achieves here.  For adapter models the shared convs compute no
  weight gradients, so the x3 convention overstates their work.
- Backends: keras_wrn also runs WRN-16-1 and WRN-16-4 on the other Keras
  backends (``--other-backends``, ``--backend-models``), same model code, same
  ``fit``/``predict_on_batch`` loop; rows "keras_wrn on jax" and "keras_wrn on torch".
- Adapter cost: the plain ResNet-26 and its series, parallel and merged forms in
  one process, blocks interleaved (see `paired`): separate processes of one
  network differ by several percent here, more than the 3% being checked.
- Memory: the worker's peak resident set (``ru_maxrss``) after its training
  steps: framework runtime + model + optimizer + activations of one step.
- Build time: seconds to build (and compile) WRN-28-10 and pre-act ResNet-1001.
- Input pipeline: images/s of the paper augmentation on real cifar10-jpeg
  (``--data``), as `benchmarks/input_pipeline.py` measures it.

Timings are only comparable within one run; the machine, its CPU flags, the
library versions and the command are written at the top of the report.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from keras_wrn.provenance import cpu_model_and_flags  # noqa: E402  (stdlib only: Keras starts in the workers)

import peak  # noqa: E402  (benchmarks/peak.py, next to this file)

BATCH = 128
IMPLEMENTATIONS = ("keras_wrn", "plain Keras", "PyTorch eager")
BACKENDS = ("tensorflow", "jax", "torch")
# model key -> (steps, repeats) defaults: the big ones take seconds to minutes per step.
STEPS = {"wrn-16-4": (4, 4), "wrn-28-10": (1, 2), "preact-164": (2, 3), "resnet26": (2, 3), "resnet26-series": (2, 3),
         "resnet26-parallel": (2, 3), "resnet26-merged": (2, 3)}
DEFAULT_MODELS = "wrn-16-1,wrn-16-4,wrn-28-10,preact-164,resnet26,resnet26-series,resnet26-parallel,resnet26-merged"
BUILDS = ("wrn-28-10", "preact-1001")
ADAPTER_KEYS = ("resnet26", "resnet26-series", "resnet26-parallel", "resnet26-merged")
PRECISIONS = ("float32", "bfloat16", "float16")
PRECISION_MODELS = "wrn-16-1,wrn-16-4,resnet26"
# Implementations measured at precisions other than float32.
MIXED_IMPLEMENTATIONS = ("keras_wrn", "PyTorch eager")
# Matrix-product libraries per precision (NumPy has no fast bfloat16/float16 product).
MATMUL_LIBRARIES = {"float32": ("NumPy", "TensorFlow", "PyTorch"), "bfloat16": ("TensorFlow", "PyTorch"),
                    "float16": ("TensorFlow", "PyTorch")}


def matmul_gflops(size=2048, precisions=("float32",), repeats=5, budget=20.0):
    """``{precision: {library: median GFLOP/s}}`` of a ``size``^3 matrix product (`MATMUL_LIBRARIES`).

    Run in a worker process (`machine`).  The report's "achieved" reference is
    the fastest library of each precision, so no library's slower kernel flatters
    the models.  A library whose products take longer than ``budget`` seconds in
    all (an emulated precision) stops after fewer samples.
    """
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    rates = {}
    for precision in precisions:
        products = _products(a, precision)
        rates[precision] = {}
        for name in MATMUL_LIBRARIES[precision]:
            products[name]()
            samples, spent = [], 0.0
            while len(samples) < repeats and (not samples or spent < budget):
                start = time.perf_counter()
                products[name]()
                seconds = time.perf_counter() - start
                spent += seconds
                samples.append(2 * size**3 / seconds / 1e9)
            rates[precision][name] = statistics.median(samples)
    return rates


def _products(a, precision):
    """Library name -> a function computing ``a @ a`` with that library at ``precision``."""
    import tensorflow as tf
    import torch

    tf_a, torch_a = tf.cast(tf.constant(a), precision), torch.from_numpy(a).to(getattr(torch, precision))
    return {"NumPy": lambda: a @ a, "TensorFlow": lambda: tf.linalg.matmul(tf_a, tf_a).numpy(),
            "PyTorch": lambda: torch_a @ torch_a}


def random_batch(batch=BATCH):
    """The benchmarks' inputs: ``batch`` 32x32x3 float32 images and int32 labels in [0, 10), seed 0."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((batch, 32, 32, 3)).astype(np.float32), rng.integers(0, 10, batch).astype(np.int32)


def publish(text, out):
    """Print a report and, when ``out`` is set, write it there too."""
    print(text)
    if out:
        with open(out, "w", encoding="utf-8") as stream:
            stream.write(text)


def blocks(step, steps, repeats, batch=BATCH):
    """images/s of ``repeats`` blocks of ``steps`` steps after a warm-up block.

    ``step(steps)`` may return the seconds its steps took (Keras' ``fit``: the
    epoch's span, without the per-call setup and teardown); otherwise wall time.
    """
    step(steps)  # warm-up (tracing, allocation)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        seconds = step(steps)
        rates.append(steps * batch / (seconds if seconds is not None else time.perf_counter() - start))
    return rates


# ----------------------------------------------------------------------------- models


def unknown_models(keys):
    """The keys among ``keys`` that `keras_wrn_model` and `other_model` cannot both build."""
    import keras_wrn

    def known(key):
        if key in ADAPTER_KEYS:
            return True
        return key.startswith(("wrn-", "preact-")) and key in keras_wrn.list_models()

    return [key for key in keys if not known(key)]


def keras_wrn_model(key, precision="float32"):
    """keras_wrn's own model for ``key`` at ``precision`` (compiled as the package compiles it)."""
    import keras_wrn
    from keras_wrn.adapters import MultiDomainNetwork, resnet26

    input_shape = (32, 32, 3)
    if key.startswith("resnet26"):
        kind = key.partition("-")[2] or None
        if kind is None:
            return resnet26(10, input_shape, precision=precision)
        network = MultiDomainNetwork(adapter="parallel" if kind == "merged" else kind, input_shape=input_shape,
                                     precision=precision)
        model = network.add_domain("domain", 10)
        if kind == "merged":
            model = network.merge("domain")  # compiled as the network compiles its domains
        return model
    return keras_wrn.create_model(key, classifier_activation=None, precision=precision)


def other_model(key, implementation):
    import reference_models as ref

    torch = implementation == "PyTorch eager"
    if key.startswith("wrn-"):
        depth, width = (int(part) for part in key.split("-")[1:3])
        return ref.torch_wrn(depth, width) if torch else ref.plain_keras_wrn(depth, width)
    if key.startswith("preact-"):
        depth = int(key.split("-")[1])
        kind = "bottleneck" if depth >= 164 else "basic"
        return ref.torch_preact_resnet(depth, kind) if torch else ref.plain_keras_preact_resnet(depth, kind)
    adapter = key.partition("-")[2] or None
    if adapter == "merged":  # the merged network is a plain ResNet-26
        adapter = None
    if torch:
        return ref.torch_resnet26(adapter=adapter)
    if adapter is not None:
        return None  # no "obvious Keras" multi-domain model: keras_wrn's is the Keras one
    return ref.plain_keras_resnet26()


def keras_runner(model, x, y, train):
    import keras
    import tensorflow as tf

    if not train:
        def infer(steps):
            for _ in range(steps):
                model.predict_on_batch(x)
        return infer

    class Span(keras.callbacks.Callback):
        """The epoch's steps only: each ``fit`` call also pays a setup/teardown that a
        real run pays once per epoch (about 2.4 s, at times, on this machine)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()

    def fit(steps):
        span = Span()
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[span])
        return span.seconds

    return fit


def torch_runner(model, x, y, train, precision="float32"):
    """PyTorch's eager loop on ``channels_last`` inputs; forward and loss under autocast below float32."""
    import contextlib

    import torch

    inputs = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    targets = torch.from_numpy(y.astype(np.int64))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def autocast():
        if precision == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type="cpu", dtype=getattr(torch, precision))

    def run(steps):
        model.train(train)
        for _ in range(steps):
            if train:
                optimizer.zero_grad(set_to_none=True)
                with autocast():
                    loss = loss_fn(model(inputs), targets)
                loss.backward()
                optimizer.step()
            else:
                with torch.no_grad(), autocast():
                    model(inputs)

    return run


def worker(task):
    """One measurement in this process: ``task`` is a dict (see `_tasks`); returns a result dict."""
    import resource

    if task["kind"] == "machine":
        return machine(task)
    if task["kind"] == "paired":
        return paired(task)
    if task["kind"] == "build":
        import keras_wrn

        start = time.perf_counter()
        model = keras_wrn.create_model(task["model"])
        return dict(task, seconds=time.perf_counter() - start, params=model.count_params())
    batch = task.get("batch", BATCH)
    x, y = random_batch(batch)
    key, implementation, precision = task["model"], task["implementation"], task.get("precision", "float32")
    start = time.perf_counter()
    ours = implementation.startswith("keras_wrn")
    model = keras_wrn_model(key, precision) if ours else other_model(key, implementation)
    build = time.perf_counter() - start
    if model is None:
        return dict(task, skipped=True)
    if ours:
        from keras_wrn.precision import precision_of

        if precision_of(model) != precision:
            return dict(task, skipped=True, reason=f"keras_wrn built it at {precision_of(model)}")
    if implementation == "PyTorch eager":
        import functools

        import torch

        model = model.to(memory_format=torch.channels_last)
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        runner = functools.partial(torch_runner, precision=precision)
    else:
        from keras_wrn.stats import count_parameters  # in the worker: Keras starts there

        params = count_parameters(model.trainable_weights)
        runner = keras_runner
    macs = task.get("macs")
    if macs is None:  # the architecture's count, the same for every implementation: measured once per model
        from keras_wrn.stats import model_stats

        macs = model_stats(model if ours and precision == "float32" else keras_wrn_model(key))["macs"]
    train = blocks(runner(model, x, y, True), task["steps"], task["repeats"], batch)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    infer = blocks(runner(model, x, y, False), task["steps"], task["repeats"], batch)
    return dict(task, precision=precision, params=params, macs=macs, build_seconds=build, train=train, infer=infer,
                peak_rss_mib=peak_rss, backend=os.environ.get("KERAS_BACKEND", "tensorflow"))


def machine(task):
    """The references of the run, in one worker: framework versions, the precisions, GPUs and the
    matrix-product rates of every precision (`matmul_gflops`).

    ``task["precisions"]``: the precisions asked for, or None for `default_precisions`.
    """
    import keras
    import tensorflow as tf
    import torch

    from keras_wrn.precision import native_bfloat16
    from keras_wrn.provenance import cpu_model_and_flags

    gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    if task["precisions"] is None:
        precisions, why = default_precisions(cpu_model_and_flags()[1], native_bfloat16(), gpus)
    else:
        precisions, why = task["precisions"], "--precisions"
    return dict(task, versions={"TensorFlow": tf.__version__, "Keras": keras.__version__, "PyTorch": torch.__version__},
                gpus=gpus, precisions=precisions, precisions_why=why, rates=matmul_gflops(task["size"], precisions))


def paired(task):
    """Adapter cost in one process: the plain ResNet-26 and its adapter/merged forms, blocks interleaved.

    Separate processes of the very same network differ by up to 7% here (memory
    placement, thread start-up), more than the 3% the merged network is held to, so
    these ratios come from blocks run in turn in one process: for each repetition,
    one block of every model, and the ratio of each model's block time to the plain
    network's block of the same repetition.
    """
    x, y = random_batch(task.get("batch", BATCH))
    keys, steps, repeats = task["models"], task["steps"], task["repeats"]
    models = {key: keras_wrn_model(key) for key in keys}
    result = dict(task)
    for phase, train in (("train", True), ("infer", False)):
        runners = {key: keras_runner(model, x, y, train) for key, model in models.items()}
        for run in runners.values():
            run(steps)  # warm-up
        seconds = {key: [] for key in keys}
        for _ in range(repeats):
            for key, run in runners.items():
                start = time.perf_counter()
                spent = run(steps)
                seconds[key].append(spent if spent is not None else time.perf_counter() - start)
        result[phase] = {key: [s / p for s, p in zip(seconds[key], seconds[keys[0]])] for key in keys[1:]}
    return result


def _run_worker(task, backend):
    backend = task.get("backend", backend)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=backend)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(task)], capture_output=True,
                         text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark worker {task} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _tasks(models, steps, repeats, implementations, backends, backend_models, precisions=("float32",),
           precision_models=()):
    """Throughput tasks per model: every implementation at float32, keras_wrn on the other backends, then
    keras_wrn and PyTorch at the other ``precisions`` for ``precision_models``."""
    for key in models:
        key_steps, key_repeats = STEPS.get(key, (steps, repeats)) if steps is None else (steps, repeats)
        for implementation in implementations:
            yield dict(kind="throughput", model=key, implementation=implementation, precision="float32",
                       steps=key_steps, repeats=key_repeats)
        if key in backend_models:
            for backend in backends:
                yield dict(kind="throughput", model=key, implementation=f"keras_wrn on {backend}", backend=backend,
                           precision="float32", steps=key_steps, repeats=key_repeats)
        if key not in precision_models:
            continue
        for precision in precisions:
            for implementation in implementations:
                if precision == "float32" or implementation not in MIXED_IMPLEMENTATIONS:
                    continue
                yield dict(kind="throughput", model=key, implementation=implementation, precision=precision,
                           steps=key_steps, repeats=key_repeats)


def round_order(tasks, rounds):
    """The tasks of ``rounds`` rounds: the list forward, then backward, and so on, so that neighbours in the
    list (keras_wrn, plain Keras, PyTorch of one model) take turns at going first."""
    for index in range(rounds):
        yield from (tasks if index % 2 == 0 else tasks[::-1])


def merge_rounds(rows):
    """One row per configuration (model, implementation, precision, backend) from the rows of every round:
    the blocks of all its processes pooled, the highest peak RSS, ``processes`` how many were pooled."""
    merged = {}
    for row in rows:
        key = (row["model"], row["implementation"], row.get("precision", "float32"), row.get("backend"))
        if key not in merged:
            merged[key] = dict(row, processes=1)
        elif not row.get("skipped"):
            into = merged[key]
            into.update(train=into["train"] + row["train"], infer=into["infer"] + row["infer"],
                        peak_rss_mib=max(into["peak_rss_mib"], row["peak_rss_mib"]),
                        processes=into["processes"] + 1)
    return list(merged.values())


def default_precisions(flags, native_bfloat16, gpus):
    """``(precisions, why)``: float32; bfloat16 where native; float16 on a GPU or a CPU with AMX-FP16."""
    native, reason = native_bfloat16
    precisions, why = ["float32"], []
    if native:
        precisions.append("bfloat16")
        why.append(f"bfloat16: {reason}")
    else:
        why.append(f"no bfloat16: {reason}")
    if gpus or "amx_fp16" in flags:
        precisions.append("float16")
        why.append(f"float16: {'a GPU' if gpus else 'amx_fp16'}")
    else:
        why.append("no float16: no GPU and no amx_fp16 (it would be emulated)")
    return precisions, "; ".join(why)


# ----------------------------------------------------------------------------- report


def spread(values):
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def references(matmul, peaks):
    """``{precision: (true peak GFLOP/s or None, best matrix product GFLOP/s or None)}``."""
    return {precision: (peaks.get(precision, {}).get("gflops"), max(rates.values()) if rates else None)
            for precision, rates in matmul["rates"].items()}


def report(rows, builds, pipeline, matmul, command, backend, adapters=None, batch=BATCH, machine=None):
    """The Markdown report; ``machine``: CPU, flags, versions, precisions, clock and peaks (see `main`)."""
    machine = machine or {}
    peaks = machine.get("peaks", {})
    bars = references(matmul, peaks)
    versions = ", ".join(f"{name} {version}" for name, version in machine.get("versions", {}).items())
    flags = machine.get("flags", set())
    clock = machine.get("clock", {})
    lines = [
        "# Benchmarks: training and inference throughput",
        "",
        f"{datetime.date.today()}, {platform.machine()} {machine.get('cpu', _cpu_name())}, {os.cpu_count()} CPUs "
        f"(logical CPUs as os.cpu_count() counts them; vCPUs on a VM), Keras backend `{backend}`, batch {batch}, "
        f"32x32x3" + (f"; {versions}" if versions else "") + ".",
        "CPU flags the peaks rely on: " + (", ".join(f for f in peak.FLAGS if f in flags) or "none of "
                                           + ", ".join(peak.FLAGS))
        + (f" (absent: {', '.join(f for f in peak.FLAGS if f not in flags)})"
           if any(f not in flags for f in peak.FLAGS) and flags else "") + ".",
    ]
    if machine.get("precisions"):
        below = ", ".join(machine.get("precision_models", [])) or "-"
        lines.append(f"Precisions: {', '.join(machine['precisions'])} ({machine.get('precisions_why', '')}); below "
                     f"float32, keras_wrn and PyTorch rows for {below}.")
    if machine.get("gpus"):
        lines.append(f"GPUs visible: {', '.join(machine['gpus'])}; the peaks below are the CPU's.")
    if clock:
        lines.append(f"Clock under load: {clock['ghz']:.2f} GHz, {clock['detail']}." if clock.get("ghz")
                     else f"Clock under load: unknown ({clock['detail']}); no true peak.")
    lines += [
        "",
        "| precision | true peak: cores x clock under load x FLOP/cycle/core of the best unit | achieved: fastest "
        f"{matmul['size']}^3 matrix product, GFLOP/s |",
        "|---|---|---|",
    ]
    for precision, rates in matmul["rates"].items():
        true_peak, best = bars[precision]
        achieved = ", ".join(f"{name} {rate:,.1f}" for name, rate in rates.items()) + f": {best:,.1f}"
        if true_peak:
            achieved += f" ({100 * best / true_peak:.0f}% of peak)"
        lines.append(f"| {precision} | {peaks[precision]['derivation'] if true_peak else '-'} | {achieved} |")
    processes = max((row.get("processes", 1) for row in rows if not row.get("skipped")), default=1)
    lines += [
        "",
        f"Command: `{command}`",
        "",
    ]
    if processes > 1:
        lines += [f"Each row pools the blocks of {processes} worker processes (`--rounds`), run in alternating "
                  "order; medians and min-max are over all of them.", ""]
    lines += [
        "| model | implementation | precision | trainable params | train img/s (min-max) | x PyTorch "
        "| train GFLOP/s (% of peak, % of matmul) | inference img/s (min-max) | x PyTorch "
        "| inference GFLOP/s (% of peak, % of matmul) | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def percent(gflops, reference):
        return f"{100 * gflops / reference:.0f}%" if reference else "-"

    for row in rows:
        if row.get("skipped"):
            continue
        precision = row.get("precision", "float32")
        ref = next((r for r in rows if r["model"] == row["model"] and r["implementation"] == "PyTorch eager"
                    and r.get("precision", "float32") == precision and not r.get("skipped")), None)
        true_peak, best = bars.get(precision, (None, None))
        train, infer = statistics.median(row["train"]), statistics.median(row["infer"])
        train_gflops, infer_gflops = train * row["macs"] * 6 / 1e9, infer * row["macs"] * 2 / 1e9
        ratio = (lambda ours, key: f"{ours / statistics.median(ref[key]):.2f}" if ref else "-")
        lines.append(
            f"| {row['model']} | {row['implementation']} | {precision} | {row['params']:,} | {spread(row['train'])} "
            f"| {ratio(train, 'train')} | {train_gflops:.1f} ({percent(train_gflops, true_peak)}, "
            f"{percent(train_gflops, best)}) | {spread(row['infer'])} | {ratio(infer, 'infer')} "
            f"| {infer_gflops:.1f} ({percent(infer_gflops, true_peak)}, {percent(infer_gflops, best)}) "
            f"| {row['peak_rss_mib']:,.0f} |")
    missing = {}
    for row in rows:
        if row.get("skipped") and row.get("reason"):
            missing.setdefault((row["model"], row["reason"]), []).append(row["precision"])
    if missing:
        lines += [""] + [f"Not measured: {key} at {', '.join(dict.fromkeys(precisions))} ({reason})."
                         for (key, reason), precisions in missing.items()]
    if adapters:
        lines += ["", f"Adapter cost (keras_wrn, one process, {adapters['repeats']} interleaved blocks of "
                  f"{adapters['steps']} steps per model): each model's block time over the plain ResNet-26's block "
                  "of the same repetition, median (min-max).", "",
                  "| model | training step time / plain | inference time / plain |", "|---|---|---|"]
        for key in adapters["models"][1:]:
            train, infer = adapters["train"][key], adapters["infer"][key]
            lines.append(f"| {key} | {statistics.median(train):.3f} ({min(train):.3f}-{max(train):.3f}) "
                         f"| {statistics.median(infer):.3f} ({min(infer):.3f}-{max(infer):.3f}) |")
    if builds:
        lines += ["", "| build (create_model, compiled) | parameters | seconds |", "|---|---|---|"]
        lines += [f"| {b['model']} | {b['params']:,} | {b['seconds']:.1f} |" for b in builds]
    if pipeline:
        lines += ["", "Input pipeline on real cifar10-jpeg (50,000 training images, batch 128, "
                  "`keras_wrn.data.make_dataset`), images/s median (min-max):", ""]
        lines += [f"- {kind}: {spread(rates)}" for kind, rates in pipeline.items()]
    return "\n".join(lines) + "\n"


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as handle:
            return next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def _pipeline(data, repeats):
    from input_pipeline import measure_pipeline

    return measure_pipeline(data, repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS))
    parser.add_argument("--steps", type=int, default=None, help="steps per block (default: per model, 20 or less)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=1,
                        help="worker processes per configuration, their blocks pooled (default 1)")
    parser.add_argument("--builds", default=",".join(BUILDS), help="models whose build time is measured ('' none)")
    parser.add_argument("--data", default=None, help="extracted cifar10-jpeg, for the input pipeline row")
    parser.add_argument("--backend", default="tensorflow", choices=BACKENDS,
                        help="Keras backend of the keras_wrn and plain Keras rows (default tensorflow)")
    parser.add_argument("--other-backends", default=None,
                        help="backends that keras_wrn also runs on, for --backend-models (default: the two other "
                             "than --backend; '' none, the default of --quick)")
    parser.add_argument("--backend-models", default="wrn-16-1,wrn-16-4",
                        help="models measured on --other-backends too")
    parser.add_argument("--precisions", default=None,
                        help="comma list of " + ",".join(PRECISIONS) + " (default: float32, plus bfloat16 where the "
                             "hardware computes it natively, plus float16 on a GPU or a CPU with amx_fp16)")
    parser.add_argument("--precision-models", default=PRECISION_MODELS,
                        help="models also measured below float32, keras_wrn and PyTorch (default %(default)s)")
    parser.add_argument("--adapters", default="on", choices=("on", "off"),
                        help="measure the adapter cost (plain/series/parallel/merged ResNet-26 in one process)")
    parser.add_argument("--out", default=os.path.join(HERE, "results.md"))
    parser.add_argument("--batch", type=int, default=BATCH, help=f"images per step (default {BATCH})")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 step, 1 repeat, batch 16, 512^3 matrix products, no file, no builds "
                             "(wrn-16-1 unless --models)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return None
    if args.quick:
        args.models = "wrn-16-1" if args.models == DEFAULT_MODELS else args.models
        args.steps, args.repeats, args.out, args.builds, args.batch = 1, 1, None, "", 16
        args.other_backends = "" if args.other_backends is None else args.other_backends
    if args.other_backends is None:
        args.other_backends = ",".join(b for b in BACKENDS if b != args.backend)
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    implementations = [i for i in args.implementations.split(",") if i]
    unknown = set(implementations) - set(IMPLEMENTATIONS)
    if unknown:
        raise SystemExit(f"--implementations: unknown {sorted(unknown)}; expected some of {list(IMPLEMENTATIONS)}")
    others = [b for b in args.other_backends.split(",") if b]
    if set(others) - set(BACKENDS) or args.backend in others:
        raise SystemExit(f"--other-backends: expected some of {[b for b in BACKENDS if b != args.backend]}, "
                         f"got {others}")
    if args.rounds < 1:
        raise SystemExit(f"--rounds: expected an integer >= 1, got {args.rounds}")
    precisions = None if args.precisions is None else [p for p in args.precisions.split(",") if p]
    if precisions is not None and (set(precisions) - set(PRECISIONS) or not precisions):
        raise SystemExit(f"--precisions: expected some of {list(PRECISIONS)}, got {precisions}")
    precisions = None if precisions is None else [p for p in PRECISIONS if p in precisions]
    models = [m for m in args.models.split(",") if m]
    precision_models = [m for m in args.precision_models.split(",") if m in models]
    cpu, flags = cpu_model_and_flags()
    clock = peak.measure_clock(os.cpu_count())
    print(f"clock under load: {clock['detail']}", flush=True)
    machine = _run_worker(dict(kind="machine", models=precision_models, precisions=precisions,
                               size=512 if args.quick else 2048), args.backend)
    precisions = machine["precisions"]
    peaks = peak.peaks(flags, clock["ghz"], os.cpu_count(), clock["source"]) if clock["ghz"] else {}
    machine.update(cpu=cpu, flags=flags, clock=clock, peaks=peaks,
                   precision_models=precision_models if len(precisions) > 1 else [])
    matmul = dict(size=machine["size"], rates=machine["rates"])
    rows, macs = [], {}
    tasks = list(_tasks(models, args.steps, args.repeats or 5, implementations, others,
                        [m for m in args.backend_models.split(",") if m], precisions, precision_models))
    for task in round_order(tasks, args.rounds):
        task = dict(task)
        if args.steps is None and task["model"] not in STEPS:
            task["steps"] = 20
        task.update(batch=args.batch, macs=macs.get(task["model"]))
        row = _run_worker(task, args.backend)
        rows.append(row)
        if "macs" in row:
            macs[task["model"]] = row["macs"]
        if not row.get("skipped"):
            print(f"{row['model']:18s} {row['implementation']:18s} {row['precision']:8s} train "
                  f"{spread(row['train'])} img/s  inference {spread(row['infer'])} img/s", flush=True)
    adapters = None
    if args.adapters == "on" and set(ADAPTER_KEYS[1:]) & set(models):
        keys = ["resnet26"] + [key for key in ADAPTER_KEYS[1:] if key in models]
        adapters = _run_worker(dict(kind="paired", models=keys, steps=args.steps or 3, repeats=args.repeats or 5,
                                    batch=args.batch),
                               args.backend)
    builds = [_run_worker(dict(kind="build", model=name), args.backend) for name in args.builds.split(",") if name]
    pipeline = _pipeline(args.data, 3) if args.data else None
    rows = merge_rounds(rows)
    publish(report(rows, builds, pipeline, matmul, command, args.backend, adapters, args.batch, machine), args.out)
    return rows


if __name__ == "__main__":
    main()
