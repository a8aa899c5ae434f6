"""Training and inference throughput: keras_wrn vs plain Keras vs PyTorch eager, and the arithmetic limit.

    python benchmarks/run.py [--models wrn-16-1,wrn-16-4,...] [--data CIFAR10_JPEG_DIR] [--out benchmarks/results.md]
    python benchmarks/run.py --quick      # a smoke run (tests use it); its numbers mean nothing

Every figure is taken in a fresh worker process (``--worker``), one model and one
implementation at a time, so TensorFlow's and PyTorch's thread pools never compete
and each process's peak resident memory is that configuration's alone.

- Throughput: batch 128 of 32x32x3 random inputs; one warm-up block of steps
  (tracing, allocation), then ``--repeats`` blocks of ``--steps`` steps, images/s
  per block; the table gives the median and the min-max spread.  Keras models train
  with ``model.fit`` on a repeated `tf.data` batch (what a user runs), timed from
  the epoch's first step to its last (callbacks): a ``fit`` call's own setup and
  teardown, paid once per epoch in real training, sometimes costs 2.4 s here,
  which would swamp a 20-step block.  Inference is ``predict_on_batch``.  PyTorch
  runs the usual eager loop (``zero_grad``, forward, ``backward``, SGD ``step``;
  ``torch.no_grad`` for inference).
- Arithmetic: achieved GFLOP/s = images/s x 2 FLOPs per multiply-accumulate
  (`keras_wrn.model_stats`) x 3 for a training step (forward, input gradients,
  weight gradients) or x 1 for inference, over the float32 matrix-product rate
  measured in the same run: the fastest 2048^3 product of NumPy, TensorFlow and
  PyTorch.  This is a measured bar, not the CPU's theoretical peak (its clock under
  load is unknown here); oneDNN's convolutions can exceed it.  For adapter models the shared convs
  compute no weight gradients, so the x3 convention overstates their work.
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

Timings are only comparable within one run; the machine and the command are
written at the top of the report.
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
BATCH = 128
IMPLEMENTATIONS = ("keras_wrn", "plain Keras", "PyTorch eager")
BACKENDS = ("tensorflow", "jax", "torch")
# model key -> (steps, repeats) defaults: the big ones take seconds to minutes per step.
STEPS = {"wrn-16-4": (4, 4), "wrn-28-10": (1, 2), "preact-164": (2, 3), "resnet26": (2, 3), "resnet26-series": (2, 3),
         "resnet26-parallel": (2, 3), "resnet26-merged": (2, 3)}
DEFAULT_MODELS = "wrn-16-1,wrn-16-4,wrn-28-10,preact-164,resnet26,resnet26-series,resnet26-parallel,resnet26-merged"
BUILDS = ("wrn-28-10", "preact-1001")
ADAPTER_KEYS = ("resnet26", "resnet26-series", "resnet26-parallel", "resnet26-merged")


def matmul_gflops(size=2048, repeats=5):
    """Median float32 GFLOP/s of a ``size``^3 matrix product in NumPy, TensorFlow and PyTorch.

    Run in a worker process (`worker`, kind "matmul"); the arithmetic limit of the
    report is the fastest of the three, so no library's slower BLAS flatters the models.
    """
    import tensorflow as tf
    import torch

    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    tf_a, torch_a = tf.constant(a), torch.from_numpy(a)
    products = {"NumPy": lambda: a @ a, "TensorFlow": lambda: tf.linalg.matmul(tf_a, tf_a).numpy(),
                "PyTorch": lambda: torch_a @ torch_a}
    rates = {}
    for name, product in products.items():
        product()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            product()
            samples.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
        rates[name] = statistics.median(samples)
    return rates


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


def _keras_wrn_model(key):
    """keras_wrn's own model for ``key`` (compiled as the package compiles it) and its MAC count."""
    import keras_wrn
    from keras_wrn.adapters import MultiDomainNetwork, resnet26

    input_shape = (32, 32, 3)
    if key.startswith("resnet26"):
        kind = key.partition("-")[2] or None
        if kind is None:
            return resnet26(10, input_shape)
        network = MultiDomainNetwork(adapter="parallel" if kind == "merged" else kind, input_shape=input_shape)
        model = network.add_domain("domain", 10)
        if kind == "merged":
            model = network.merge("domain")  # compiled as the network compiles its domains
        return model
    return keras_wrn.create_model(key, classifier_activation=None)


def _other_model(key, implementation):
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


def _keras_runner(model, x, y, train):
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


def _torch_runner(model, x, y, train):
    import torch

    inputs, targets = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y.astype(np.int64))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run(steps):
        model.train(train)
        for _ in range(steps):
            if train:
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(inputs), targets).backward()
                optimizer.step()
            else:
                with torch.no_grad():
                    model(inputs)

    return run


def worker(task):
    """One measurement in this process: ``task`` is a dict (see `_tasks`); returns a result dict."""
    import resource

    if task["kind"] == "matmul":
        return dict(task, rates=matmul_gflops(task["size"]))
    if task["kind"] == "paired":
        return paired(task)
    if task["kind"] == "build":
        import keras_wrn

        start = time.perf_counter()
        model = keras_wrn.create_model(task["model"])
        return dict(task, seconds=time.perf_counter() - start, params=model.count_params())
    rng = np.random.default_rng(0)
    batch = task.get("batch", BATCH)
    x = rng.standard_normal((batch, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int32)
    key, implementation = task["model"], task["implementation"]
    start = time.perf_counter()
    ours = implementation.startswith("keras_wrn")
    model = _keras_wrn_model(key) if ours else _other_model(key, implementation)
    build = time.perf_counter() - start
    if model is None:
        return dict(task, skipped=True)
    if implementation == "PyTorch eager":
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        runner = _torch_runner
    else:
        from keras_wrn.stats import count_parameters  # in the worker: Keras starts there

        params = count_parameters(model.trainable_weights)
        runner = _keras_runner
    macs = task.get("macs")
    if macs is None:  # the architecture's count, the same for every implementation: measured once per model
        from keras_wrn.stats import model_stats

        macs = model_stats(model if ours else _keras_wrn_model(key))["macs"]
    train = blocks(runner(model, x, y, True), task["steps"], task["repeats"], batch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    infer = blocks(runner(model, x, y, False), task["steps"], task["repeats"], batch)
    return dict(task, params=params, macs=macs, build_seconds=build, train=train, infer=infer, peak_rss_mib=peak,
                backend=os.environ.get("KERAS_BACKEND", "tensorflow"))


def paired(task):
    """Adapter cost in one process: the plain ResNet-26 and its adapter/merged forms, blocks interleaved.

    Separate processes of the very same network differ by up to 7% here (memory
    placement, thread start-up), more than the 3% the merged network is held to, so
    these ratios come from blocks run in turn in one process: for each repetition,
    one block of every model, and the ratio of each model's block time to the plain
    network's block of the same repetition.
    """
    rng = np.random.default_rng(0)
    batch = task.get("batch", BATCH)
    x = rng.standard_normal((batch, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int32)
    keys, steps, repeats = task["models"], task["steps"], task["repeats"]
    models = {key: _keras_wrn_model(key) for key in keys}
    result = dict(task)
    for phase, train in (("train", True), ("infer", False)):
        runners = {key: _keras_runner(model, x, y, train) for key, model in models.items()}
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


def _tasks(models, steps, repeats, implementations, backends, backend_models):
    """Throughput tasks: every implementation of every model, then keras_wrn on the other backends."""
    for key in models:
        key_steps, key_repeats = STEPS.get(key, (steps, repeats)) if steps is None else (steps, repeats)
        for implementation in implementations:
            yield dict(kind="throughput", model=key, implementation=implementation, steps=key_steps,
                       repeats=key_repeats)
        if key in backend_models:
            for backend in backends:
                yield dict(kind="throughput", model=key, implementation=f"keras_wrn on {backend}", backend=backend,
                           steps=key_steps, repeats=key_repeats)


# ----------------------------------------------------------------------------- report


def _spread(values):
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def report(rows, builds, pipeline, matmul, command, backend, adapters=None, batch=BATCH):
    peak = max(matmul["rates"].values())
    lines = [
        "# Benchmarks: training and inference throughput",
        "",
        f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} CPUs ({_cpu_name()}), Keras backend "
        f"`{backend}`, batch {batch}, 32x32x3. Arithmetic limit: the fastest float32 matrix product "
        f"({matmul['size']}^3) of " + ", ".join(f"{name} {rate:.1f}" for name, rate in matmul["rates"].items())
        + f" GFLOP/s, i.e. {peak:.1f} GFLOP/s.",
        f"Command: `{command}`",
        "",
        "| model | implementation | trainable params | train img/s (min-max) | x PyTorch | train GFLOP/s (% of matmul) "
        "| inference img/s (min-max) | x PyTorch | inference GFLOP/s (%) | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.get("skipped"):
            continue
        ref = next((r for r in rows if r["model"] == row["model"] and r["implementation"] == "PyTorch eager"
                    and not r.get("skipped")), None)
        train, infer = statistics.median(row["train"]), statistics.median(row["infer"])
        train_gflops, infer_gflops = train * row["macs"] * 6 / 1e9, infer * row["macs"] * 2 / 1e9
        ratio = (lambda ours, key: f"{ours / statistics.median(ref[key]):.2f}" if ref else "-")
        lines.append(
            f"| {row['model']} | {row['implementation']} | {row['params']:,} | {_spread(row['train'])} "
            f"| {ratio(train, 'train')} | {train_gflops:.1f} ({100 * train_gflops / peak:.0f}%) | {_spread(row['infer'])} "
            f"| {ratio(infer, 'infer')} | {infer_gflops:.1f} ({100 * infer_gflops / peak:.0f}%) "
            f"| {row['peak_rss_mib']:,.0f} |")
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
        lines += [f"- {kind}: {_spread(rates)}" for kind, rates in pipeline.items()]
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
    parser.add_argument("--builds", default=",".join(BUILDS), help="models whose build time is measured ('' none)")
    parser.add_argument("--data", default=None, help="extracted cifar10-jpeg, for the input pipeline row")
    parser.add_argument("--backend", default="tensorflow", choices=BACKENDS,
                        help="Keras backend of the keras_wrn and plain Keras rows (default tensorflow)")
    parser.add_argument("--other-backends", default=None,
                        help="backends that keras_wrn also runs on, for --backend-models (default: the two other "
                             "than --backend; '' none, the default of --quick)")
    parser.add_argument("--backend-models", default="wrn-16-1,wrn-16-4",
                        help="models measured on --other-backends too")
    parser.add_argument("--adapters", default="on", choices=("on", "off"),
                        help="measure the adapter cost (plain/series/parallel/merged ResNet-26 in one process)")
    parser.add_argument("--out", default=os.path.join(HERE, "results.md"))
    parser.add_argument("--batch", type=int, default=BATCH, help=f"images per step (default {BATCH})")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 step, 1 repeat, batch 16, no file, no builds (wrn-16-1 unless --models)")
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
    models = [m for m in args.models.split(",") if m]
    matmul = _run_worker(dict(kind="matmul", size=512 if args.quick else 2048), args.backend)
    rows, macs = [], {}
    for task in _tasks(models, args.steps, args.repeats or 5, implementations, others,
                       [m for m in args.backend_models.split(",") if m]):
        if args.steps is None and task["model"] not in STEPS:
            task["steps"] = 20
        task.update(batch=args.batch, macs=macs.get(task["model"]))
        row = _run_worker(task, args.backend)
        rows.append(row)
        if "macs" in row:
            macs[task["model"]] = row["macs"]
        if not row.get("skipped"):
            print(f"{row['model']:18s} {row['implementation']:14s} train {_spread(row['train'])} img/s  "
                  f"inference {_spread(row['infer'])} img/s", flush=True)
    adapters = None
    if args.adapters == "on" and set(ADAPTER_KEYS[1:]) & set(models):
        keys = ["resnet26"] + [key for key in ADAPTER_KEYS[1:] if key in models]
        adapters = _run_worker(dict(kind="paired", models=keys, steps=args.steps or 3, repeats=args.repeats or 5,
                                    batch=args.batch),
                               args.backend)
    builds = [_run_worker(dict(kind="build", model=name), args.backend) for name in args.builds.split(",") if name]
    pipeline = _pipeline(args.data, 3) if args.data else None
    text = report(rows, builds, pipeline, matmul, command, args.backend, adapters, args.batch)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as stream:
            stream.write(text)
    return rows


if __name__ == "__main__":
    main()
