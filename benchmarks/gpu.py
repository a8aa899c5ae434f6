"""GPU throughput: keras_wrn on Keras 3 / JAX vs PyTorch eager and ``torch.compile``, per precision.

    python benchmarks/gpu.py [--models wrn-16-1,wrn-16-4,resnet26] [--precisions float32,bfloat16,float16]
                             [--compile-precisions bfloat16,float32] [--budget 280]
                             [--report gpu.md] [--json gpu.json]
    python benchmarks/gpu.py --device cpu --models wrn-16-1 --steps 2 --repeats 1 --batch 32 \\
                             --precisions float32,bfloat16 --no-compile     # a smoke run; its numbers mean nothing

What is measured, per model and precision: training images/s (forward,
backward, SGD step) and inference images/s of three implementations of the
same architecture on the same GPU, each in a worker process of its own, one
after the other (``XLA_PYTHON_CLIENT_PREALLOCATE=false`` for JAX, so nothing is
held that the next process would miss):

- keras_wrn (JAX): the package's model (``precision=`` of its builders, compiled
  as the package compiles it: `CoupledWeightDecaySGD`, Nesterov momentum 0.9,
  coupled L2 5e-4, cross-entropy on logits; Keras' mixed policies, float32
  variables and BatchNorm statistics; float16 adds Keras' dynamic loss scaling
  inside the jitted step) on Keras 3 with ``KERAS_BACKEND=jax``, run as a user
  runs it: ``model.fit`` and ``model.predict`` (XLA-jitted steps, Keras' default
  one step per call) on a generator that yields the same device-resident batch.
  Each block is timed from the epoch's (the prediction's) first callback to its
  last, where the callback first waits for the device (`_span`), so a
  ``fit`` call's own setup and teardown stay out, as in `run.py`.  Keras also
  updates its compiled metrics (accuracy) in the step, and ``predict`` copies
  each batch's logits to the host (in a callback thread), as users get them.
- PyTorch eager: `reference_models` (same layers and trainable parameter counts;
  the report lists both), model and inputs in ``channels_last``, the usual loop
  (``zero_grad``, forward and loss, ``backward``, ``torch.optim.SGD`` with Nesterov
  momentum 0.9 and weight decay 5e-4 (coupled, as keras_wrn's); ``torch.no_grad``
  for inference); forward and loss under ``torch.autocast(dtype)`` below float32,
  and ``torch.amp.GradScaler`` for float16 training (its ``step`` reads an
  overflow flag on the host every step: that synchronisation is part of
  PyTorch's float16 recipe).  ``torch.backends.cudnn.benchmark`` is on: cuDNN
  picks its convolution algorithms by timing them, as XLA's autotuner does for
  JAX.
- torch.compile: the same model wrapped in ``torch.compile`` (default mode:
  Inductor kernels, no CUDA graphs), same loop, the optimizer step eager.
  Compilation is slow (tens of seconds per model and precision, training and
  inference graphs apart), so ``--compile-precisions`` may name fewer
  precisions.
- float32 means each framework's default: PyTorch's cuDNN convolutions use
  TF32 tensor cores (``torch.backends.cudnn.allow_tf32``, on by default); XLA's
  default precision allows TF32 too on Ampere and later (the report says what a
  float32 convolution with JAX's default precision did, `_jax_float32_is_tf32`).
- Timing: batch 128 of 32x32x3 random normal images and 10 random labels (one
  seed, the same arrays for all), one warm-up block (tracing, compilation,
  autotuning; its wall time is reported as "first block") and ``--repeats``
  blocks of ``--steps`` steps (`run.blocks`); images/s per block, the median and
  the min-max spread.  On a GPU each PyTorch block starts and ends with
  ``torch.cuda.synchronize()``.
- Arithmetic: GFLOP/s = images/s x MACs per image (`keras_wrn.model_stats`,
  taken by the keras_wrn worker) x 2 FLOPs x 3 for a training step (forward,
  input gradients, weight gradients) or x 1 for inference, as `run.py` counts,
  and its percentage of an achieved reference: the best of a few 8192^3 PyTorch
  matrix products of the row's precision (float32: TF32 allowed, what the
  convolutions get; strict float32 is listed too).  The dense tensor-core peak
  of the data sheet is not measured and not used.
- Budget: ``--budget`` seconds for the whole run.  Each worker gets a share of
  what is left (`allot`, `WEIGHTS`); within it the jobs run in `PRIORITY` order
  (bfloat16 for every model, then float32, then float16), a job that would not
  fit (judged by the job before it) is recorded as skipped, and a worker that
  overruns is stopped, keeping the rows it has already reported.  A failing job (an op without a float16 kernel,
  say) records its error in its row and the run goes on.  The report and the
  JSON are rewritten after every worker.

No TensorFlow anywhere: the keras_wrn worker imports Keras on JAX only, the
PyTorch workers import Keras on its torch backend (for `reference_models`).
"""

import argparse
import collections
import datetime
import functools
import importlib.metadata
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
if ROOT not in sys.path:
    sys.path.insert(1, ROOT)  # keras_wrn from this checkout where it is not installed (the GPU machine)

import run  # noqa: E402  (benchmarks/run.py: stdlib and NumPy at import; Keras starts in the workers)

# Command-line name -> implementation name in rows and tables.
IMPLEMENTATIONS = {"keras": "keras_wrn (JAX)", "eager": "PyTorch eager", "compile": "torch.compile"}
# Keras backend of each implementation's worker: JAX for keras_wrn; torch for the PyTorch workers, whose
# `reference_models` import Keras (torch is loaded there anyway; no JAX, no second CUDA runtime).
BACKENDS = {"keras": "jax", "eager": "torch", "compile": "torch"}
# Share of the remaining budget each worker may use (see `allot`): XLA's compilation of three models at
# three precisions dominates keras_wrn's time; PyTorch eager needs a few seconds a job; torch.compile comes
# last and also gets what the others leave.
WEIGHTS = {"keras": 6.0, "eager": 2.0, "compile": 3.0}
DEFAULT_MODELS = "wrn-16-1,wrn-16-4,resnet26"
PRECISIONS = run.PRECISIONS
# Measurement order within a worker: the precision a modern GPU is used at first, float16 last.
PRIORITY = ("bfloat16", "float32", "float16")
STEPS, REPEATS = 20, 5
MATMUL_SIZE = {"cuda": 8192, "cpu": 1024}
MACHINE_SECONDS = 90  # the machine worker's limit: imports, CUDA start, the matrix products
GRACE = 5  # seconds a worker may run past its share before it is stopped
TRAIN_FLOPS_PER_MAC, INFER_FLOPS_PER_MAC = 6, 2  # run.py's convention: 2 FLOPs per MAC, x3 for a training step
ROW = "@@gpu.py row "  # prefix of the worker's result lines on stdout
PACKAGES = ("keras", "jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "jax-cuda12-plugin",
            "jax-cuda12-pjrt", "torch", "triton", "numpy", "optree", "ml-dtypes", "h5py")


# ----------------------------------------------------------------------------- planning


def jobs(models, precisions):
    """``[(model, precision)]`` in measurement order: `PRIORITY` first, then model order."""
    order = [p for p in PRIORITY if p in precisions]
    return [(model, precision) for precision in order for model in models]


def allot(remaining, weights):
    """Seconds for the first of the workers still to run: its weight's share of ``remaining``.

    Time a worker leaves unused goes to the ones after it, as every share is
    taken of what is left when the worker starts.
    """
    return max(0.0, remaining) * weights[0] / sum(weights) if weights else 0.0


def should_start(now, deadline, estimate):
    """Whether a job expected to take ``estimate`` seconds, started at ``now``, ends by ``deadline``."""
    return now + estimate <= deadline


# ----------------------------------------------------------------------------- rows


def measure(implementation, model, precision, function):
    """A result row for one job: ``function()``'s dict, or the error it raised (the run goes on)."""
    row = dict(kind="row", implementation=implementation, model=model, precision=precision)
    start = time.perf_counter()
    try:
        row.update(function())
    except Exception as error:  # noqa: BLE001  (any failure of one job is that row's result)
        row["error"] = f"{type(error).__name__}: {str(error).strip()}"[:2000]
    row["job_seconds"] = time.perf_counter() - start
    return row


def missing_rows(implementation, wanted, rows, why):
    """Error rows for the jobs in ``wanted`` that ``rows`` has no row for (a worker stopped or crashed)."""
    done = {(row["model"], row["precision"]) for row in rows if row.get("implementation") == implementation}
    return [dict(kind="row", implementation=implementation, model=model, precision=precision, error=why)
            for model, precision in wanted if (model, precision) not in done]


def find(rows, implementation, model, precision):
    return next((row for row in rows if row.get("implementation") == implementation and row.get("model") == model
                 and row.get("precision") == precision), None)


def median(row, phase):
    """The row's median images/s of ``phase`` ("train"/"infer"); None without a measurement."""
    if row is None or row.get("error") or row.get("skipped") or not row.get(phase):
        return None
    return statistics.median(row[phase])


def ratio(row, other, phase):
    """``row``'s median over ``other``'s, as text; "-" where either has none."""
    ours, theirs = median(row, phase), median(other, phase)
    return f"{ours / theirs:.2f}" if ours and theirs else "-"


def gflops(row, phase, macs):
    """GFLOP/s of ``row`` in ``phase`` from ``macs`` per image (run.py's convention); None if unknown."""
    rate = median(row, phase)
    if rate is None or not macs:
        return None
    return rate * macs * (TRAIN_FLOPS_PER_MAC if phase == "train" else INFER_FLOPS_PER_MAC) / 1e9


def model_macs(rows):
    """``{model: MACs per image}`` from the rows that carry it (the keras_wrn worker's)."""
    return {row["model"]: row["macs"] for row in rows if row.get("macs")}


# ----------------------------------------------------------------------------- report


class _Notes:
    """Numbered notes under the tables: one per implementation and distinct error or skip text."""

    def __init__(self):
        self.texts = {}

    def mark(self, text):
        return self.texts.setdefault(text, len(self.texts) + 1)

    def lines(self):
        return [f"- [{number}] {text}" for text, number in self.texts.items()]


def cell(row, phase, notes):
    """A table cell: median (min-max) images/s, "-" for a job not asked for, or a note's number."""
    if row is None:
        return "-"
    if row.get("error") or row.get("skipped"):
        text = row.get("error") or row.get("skipped")
        label = "error" if row.get("error") else "skipped"
        number = notes.mark(f"{row['implementation']}: {label}: {_shorten(text)}")
        return f"{label} [{number}]"
    return run.spread(row[phase])


def parameters(rows, model):
    """``(keras_wrn's, PyTorch's)`` trainable parameter counts of ``model`` from the rows (None if not there)."""
    def first(implementations):
        return next((row["params"] for row in rows if row["model"] == model and row.get("params")
                     and row["implementation"] in implementations), None)

    keras, eager, compiled = IMPLEMENTATIONS.values()
    return first((keras,)), first((eager, compiled))


def _count(value):
    return f"{value:,}" if value else "-"


def _shorten(text, limit=400):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def _rate(value):
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def arithmetic(rows, phase, model, precision, macs, reference):
    """The GFLOP/s cell of a table row: each implementation's rate and its % of ``reference``."""
    parts = []
    for implementation in IMPLEMENTATIONS.values():
        value = gflops(find(rows, implementation, model, precision), phase, macs)
        if value is None:
            parts.append("-")
        else:
            parts.append(_rate(value) + (f" ({100 * value / reference:.0f}%)" if reference else ""))
    return " / ".join(parts)


def references(machine):
    """``{precision: best matrix-product GFLOP/s}`` (run.references, no true peak on a GPU)."""
    rates = machine.get("matmul", {}).get("rates", {})
    return {precision: best for precision, (_, best) in run.references({"rates": rates}, {}).items()}


def phase_table(rows, phase, models, precisions, macs, refs, notes):
    keras, eager, compiled = IMPLEMENTATIONS.values()
    header = (f"| model | precision | {keras} img/s | {eager} img/s | {compiled} img/s | keras / eager "
              "| keras / compile | GFLOP/s (% of matmul): keras / eager / compile |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for model in models:
        for precision in precisions:
            ours, theirs, fast = (find(rows, name, model, precision) for name in (keras, eager, compiled))
            if ours is None and theirs is None and fast is None:
                continue
            lines.append(f"| {model} | {precision} | {cell(ours, phase, notes)} | {cell(theirs, phase, notes)} "
                         f"| {cell(fast, phase, notes)} | {ratio(ours, theirs, phase)} | {ratio(ours, fast, phase)} "
                         f"| {arithmetic(rows, phase, model, precision, macs.get(model), refs.get(precision))} |")
    return lines


def first_block_table(rows, models, precisions):
    names = list(IMPLEMENTATIONS.values())
    lines = ["| model | precision | " + " | ".join(f"{name} train / inference s" for name in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for model in models:
        for precision in precisions:
            found = [find(rows, name, model, precision) for name in names]
            if not any(row and row.get("train_first_s") for row in found):
                continue
            cells = [f"{row['train_first_s']:.1f} / {row['infer_first_s']:.1f}" if row and row.get("train_first_s")
                     else "-" for row in found]
            lines.append(f"| {model} | {precision} | " + " | ".join(cells) + " |")
    return lines


def report(result):
    """The Markdown report of ``result`` (what `main` collects; its JSON has every raw number)."""
    machine, settings = result.get("machine", {}), result["settings"]
    rows = [row for row in result.get("rows", []) if row.get("kind") == "row"]
    models, precisions = settings["models"], [p for p in PRECISIONS if p in settings["precisions"]]
    macs, refs, notes = model_macs(rows), references(machine), _Notes()
    lines = header(result) + [""] + matmul_table(machine, refs)
    for phase, title in (("train", "Training (forward, backward, SGD step)"), ("infer", "Inference")):
        lines += ["", f"## {title}, images/s", ""]
        lines += phase_table(rows, phase, models, precisions, macs, refs, notes)
    lines += ["", "## Model sizes", ""] + sizes_table(rows, models, macs)
    lines += ["", "## First block (tracing, compilation, autotuning), seconds", ""]
    lines += first_block_table(rows, models, precisions)
    problems = [w for w in result.get("workers", []) if w.get("rc") not in (0, None) or w.get("timed_out")]
    if notes.texts or problems or result.get("error"):
        lines += ["", "## Notes", ""] + notes.lines()
        lines += [f"- worker {w['implementation']}: "
                  + ("stopped at its time limit" if w.get("timed_out") else f"exit status {w['rc']}")
                  + f" after {w['seconds']:.0f} s" for w in problems]
        if result.get("error"):
            lines.append(f"- {_shorten(result['error'], 1500)}")
    return "\n".join(lines) + "\n"


def header(result):
    """The report's first lines: device, versions, float32 settings, method, command."""
    machine, jax_info, settings = result.get("machine", {}), result.get("jax", {}), result["settings"]
    device = machine.get("gpu") or machine.get("device") or "unknown device"
    details = [f"compute capability {machine['capability']}" if machine.get("capability") else None,
               f"{machine['memory_gib']:.0f} GiB" if machine.get("memory_gib") else None,
               f"driver {machine['driver']}" if machine.get("driver") else None,
               f"CUDA {machine['cuda']}" if machine.get("cuda") else None,
               f"cuDNN {machine['cudnn']}" if machine.get("cudnn") else None]
    details = ", ".join(detail for detail in details if detail)
    versions = ", ".join(f"{name} {version}" for name, version in machine.get("versions", {}).items())
    if jax_info.get("backend"):
        checked = {True: "ran in TF32", False: "ran in full float32", None: "was not checked"}[jax_info.get("tf32")]
        jax_line = (f"JAX: backend {jax_info['backend']}, devices {', '.join(jax_info.get('devices', []))}; a float32 "
                    f"convolution at JAX's default precision {checked}.")
    else:
        jax_line = "JAX: not run."
    torch_settings = ", ".join(f"{name} {value}" for name, value in machine.get("tf32", {}).items())
    torch_line = (f" PyTorch defaults: {torch_settings or 'unknown'}; cudnn.benchmark on."
                  if machine.get("device") == "cuda" else " PyTorch on the CPU.")
    compiled = ", ".join(settings.get("compile_precisions", [])) or "no precision"
    return [
        "# GPU benchmark: keras_wrn (Keras 3 on JAX) vs PyTorch eager and torch.compile",
        "",
        f"{result.get('date', '')}, {device}" + (f" ({details})" if details else "")
        + f"; host {platform.machine()} with {machine.get('cpus', '?')} CPUs.",
        f"Versions: {versions or 'unknown'}.",
        jax_line + torch_line,
        (f"Batch {settings['batch']} of 32x32x3, {settings['repeats']} blocks of {settings['steps']} steps after a "
         f"warm-up block, images/s median (min-max); budget {settings['budget']:.0f} s, torch.compile at "
         f"{compiled}. Method and fairness choices: the docstring of benchmarks/gpu.py."),
        "",
        f"Command: `{result.get('command', '')}`",
    ]


def matmul_table(machine, refs):
    """The matrix-product references: every variant measured, and the one each precision's % uses."""
    matmul = machine.get("matmul", {})
    if not matmul.get("rates"):
        return [f"No matrix-product reference: {_shorten(machine.get('matmul_error', 'not measured'))}."]
    title = (f"| precision | {matmul.get('size', '?')}^3 PyTorch matrix product, best of "
             f"{matmul.get('repeats', '?')}, GFLOP/s | reference |")
    lines = [title, "|---|---|---|"]
    for precision, rates in matmul.get("rates", {}).items():
        listed = ", ".join(f"{name} {_rate(rate)}" for name, rate in rates.items())
        lines.append(f"| {precision} | {listed} | {_rate(refs[precision]) if refs.get(precision) else '-'} |")
    return lines


def sizes_table(rows, models, macs):
    lines = ["| model | MACs per image | trainable params: keras_wrn / PyTorch |", "|---|---|---|"]
    for model in models:
        keras_params, torch_params = parameters(rows, model)
        lines.append(f"| {model} | {_count(macs.get(model))} | {_count(keras_params)} / {_count(torch_params)} |")
    return lines


# ----------------------------------------------------------------------------- workers


def emit(row):
    print(ROW + json.dumps(row), flush=True)


def batch_arrays(batch, seed=0):
    """The run's one batch: ``(images NHWC float32, labels int32)``, from a fixed seed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch, 32, 32, 3)).astype(np.float32),
            rng.integers(0, 10, batch).astype(np.int32))


def timed_blocks(step, steps, repeats, batch):
    """`run.blocks` of ``step``, and the wall seconds of its warm-up block: ``(images/s per block, seconds)``."""
    calls = []

    def timed(count):
        start = time.perf_counter()
        seconds = step(count)
        calls.append(time.perf_counter() - start)
        return seconds

    rates = run.blocks(timed, steps, repeats, batch)
    return rates, calls[0]


def run_jobs(task, implementation, function):
    """``function(model, precision)`` for each job of ``task`` in turn, each emitted as its row.

    A job starts only if it should end by ``task["deadline"]`` (wall-clock epoch
    seconds), taking as long as the same model's last job, or else the last job.
    """
    last, taken = 0.0, {}
    for model, precision in task["jobs"]:
        estimate = taken.get(model, last)
        if not should_start(time.time(), task["deadline"], estimate):
            emit(dict(kind="row", implementation=implementation, model=model, precision=precision,
                      skipped=f"out of time: {max(0, task['deadline'] - time.time()):.0f} s left of this worker's "
                              f"share, the job would take about {estimate:.0f} s"))
            continue
        row = measure(implementation, model, precision, functools.partial(function, model, precision))
        last = taken[model] = row["job_seconds"]
        emit(row)


def machine_worker(task):
    """Device, versions and the matrix-product references (PyTorch); returns the machine dict."""
    import torch

    device = task["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: PyTorch sees no CUDA device")
    info = dict(device=device, cpus=os.cpu_count(), versions=_versions(), tf32=_torch_tf32(torch))
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), capability=f"{properties.major}.{properties.minor}",
                    memory_gib=properties.total_memory / 2**30, cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), driver=_driver())
    size = task.get("size") or MATMUL_SIZE[device]
    try:
        info["matmul"] = dict(size=size, repeats=task["repeats"],
                              rates=matmul_rates(torch, device, size, task["precisions"], task["repeats"]))
    except Exception as error:  # noqa: BLE001  (the tables go on without references)
        info["matmul_error"] = f"{type(error).__name__}: {error}"
    return info


def _torch_tf32(torch):
    """PyTorch's float32 settings as this process starts (its defaults): ``{setting: value}``."""
    settings = {}
    for name, read in (("cudnn.allow_tf32", lambda: torch.backends.cudnn.allow_tf32),
                       ("cudnn.conv.fp32_precision", lambda: torch.backends.cudnn.conv.fp32_precision),
                       ("float32_matmul_precision", torch.get_float32_matmul_precision)):
        try:
            settings[name] = read()
        except Exception:  # noqa: BLE001  (an API this version lacks or refuses: not recorded)
            pass
    return settings


def _versions():
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    versions["Python"] = platform.python_version()
    return versions


def _driver():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=False)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def matmul_rates(torch, device, size, precisions, repeats):
    """``{precision: {variant: best GFLOP/s}}`` of ``size``^3 PyTorch products; float32 on CUDA with and
    without TF32 (the run's float32 convolutions use TF32, `run.references` takes the faster)."""
    rates = {}
    inner = 10 if device == "cuda" else 1  # products per sample: launch and synchronisation amortised
    for precision in precisions:
        variants = {"PyTorch": None}
        if device == "cuda" and precision == "float32":
            variants = {"PyTorch TF32": True, "PyTorch strict float32": False}
        rates[precision] = {}
        for name, tf32 in variants.items():
            previous = torch.backends.cuda.matmul.allow_tf32
            if tf32 is not None:
                torch.backends.cuda.matmul.allow_tf32 = tf32
            try:
                a = torch.randn(size, size, device=device).to(getattr(torch, precision))
                samples = []
                for _ in range(repeats + 1):  # the first one warms up
                    _synchronize(torch, device)
                    start = time.perf_counter()
                    for _ in range(inner):
                        a @ a
                    _synchronize(torch, device)
                    samples.append(2 * size**3 * inner / (time.perf_counter() - start) / 1e9)
                rates[precision][name] = max(samples[1:])
            finally:
                torch.backends.cuda.matmul.allow_tf32 = previous
    return rates


def _synchronize(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def keras_worker(task):
    """keras_wrn on Keras/JAX: `run_jobs` over ``task["jobs"]``; first an info row (JAX backend, TF32)."""
    import jax
    import keras

    import keras_wrn.adapters
    import keras_wrn.registry  # noqa: F401  (both imported here, so that no job's time includes them)

    if keras.backend.backend() != "jax":
        raise RuntimeError(f"the keras_wrn worker needs KERAS_BACKEND=jax, Keras runs on {keras.backend.backend()}")
    backend = jax.default_backend()
    info = dict(kind="info", backend=backend, devices=[str(device) for device in jax.devices()], tf32=None)
    if backend != "cpu":
        try:
            info["tf32"] = _jax_float32_is_tf32()
        except Exception as error:  # noqa: BLE001  (the check is a footnote; the jobs still run)
            info["tf32_error"] = f"{type(error).__name__}: {error}"
    emit(info)
    x, y = batch_arrays(task["batch"])
    wrong = task["device"] == "cuda" and backend == "cpu"

    def job(model, precision):
        if wrong:
            raise RuntimeError(f"JAX has no GPU here (backend {backend}, devices {info['devices']})")
        return keras_job(model, precision, x, y, task["steps"], task["repeats"])

    run_jobs(task, IMPLEMENTATIONS["keras"], job)


def _jax_float32_is_tf32():
    """Whether a float32 convolution at JAX's default precision rounds its inputs to TF32 (10-bit mantissa).

    1 + 2^-12 survives float32 but not TF32: summed over 256 input channels, full
    float32 gives 256.0625, TF32 256.
    """
    import jax
    import jax.numpy as jnp

    lhs = jnp.full((1, 4, 4, 256), 1 + 2.0**-12, jnp.float32)
    rhs = jnp.ones((1, 1, 256, 1), jnp.float32)

    def conv(precision):
        out = jax.lax.conv_general_dilated(lhs, rhs, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                           precision=precision)
        return float(out[0, 0, 0, 0])

    return conv(None) != conv(jax.lax.Precision.HIGHEST)


def _span():
    """A Keras callback that times one ``fit`` epoch or one ``predict`` call into its ``seconds``.

    It starts at the epoch's (prediction's) begin callback and stops at the end
    callback after waiting for the model's variables on the device, so the
    steps' device work is inside and a call's setup and teardown are outside.
    """
    import jax
    import keras

    class Span(keras.callbacks.Callback):
        seconds = None

        def begin(self):
            self.start = time.perf_counter()

        def end(self):
            jax.block_until_ready([variable.value for variable in self.model.variables])
            self.seconds = time.perf_counter() - self.start

        def on_epoch_begin(self, epoch, logs=None):
            self.begin()

        def on_epoch_end(self, epoch, logs=None):
            self.end()

        def on_predict_begin(self, logs=None):
            self.begin()

        def on_predict_end(self, logs=None):
            self.end()

    return Span()


def keras_job(key, precision, x, y, steps, repeats):
    """One keras_wrn model at ``precision``: training and inference images/s, MACs and parameters."""
    import keras

    from keras_wrn.precision import precision_of
    from keras_wrn.stats import count_parameters, model_stats

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model = run.keras_wrn_model(key, precision)
    build = time.perf_counter() - start
    if precision_of(model) != precision:
        raise ValueError(f"keras_wrn built {key} at {precision_of(model)}, not {precision}")
    images, labels = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)  # on the device, once

    def batches():
        while True:
            yield images, labels

    def inputs():
        while True:
            yield (images,)

    def fit(count):
        span = _span()
        model.fit(batches(), steps_per_epoch=count, epochs=1, verbose=0, shuffle=False, callbacks=[span])
        return span.seconds

    def predict(count):
        span = _span()
        model.predict(inputs(), steps=count, verbose=0, callbacks=[span])
        return span.seconds

    train, train_first = timed_blocks(fit, steps, repeats, len(x))
    infer, infer_first = timed_blocks(predict, steps, repeats, len(x))
    return dict(train=train, infer=infer, train_first_s=train_first, infer_first_s=infer_first, build_s=build,
                params=count_parameters(model.trainable_weights), macs=model_stats(model)["macs"])


def torch_worker(task):
    """PyTorch eager or torch.compile (``task["implementation"]``): `run_jobs` over ``task["jobs"]``."""
    import reference_models  # noqa: F401  (and Keras with it: here, so that no job's time includes them)
    import torch

    device, compiled = task["device"], task["implementation"] == "compile"
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    x, y = batch_arrays(task["batch"])
    run_jobs(task, IMPLEMENTATIONS[task["implementation"]],
             lambda model, precision: torch_job(model, precision, x, y, task["steps"], task["repeats"], device,
                                                compiled))


def torch_job(key, precision, x, y, steps, repeats, device, compiled):
    """One PyTorch model (`reference_models`) at ``precision``, eager or compiled: images/s and parameters."""
    import torch

    torch.manual_seed(0)
    if compiled:
        torch._dynamo.reset()  # no graphs or guards of the previous job
    model = run.other_model(key, "PyTorch eager").to(device=device, memory_format=torch.channels_last)
    forward = torch.compile(model) if compiled else model
    train, train_first = timed_blocks(torch_loop(model, forward, x, y, True, precision, device), steps, repeats,
                                      len(x))
    infer, infer_first = timed_blocks(torch_loop(model, forward, x, y, False, precision, device), steps, repeats,
                                      len(x))
    return dict(train=train, infer=infer, train_first_s=train_first, infer_first_s=infer_first,
                params=sum(p.numel() for p in model.parameters() if p.requires_grad))


def torch_loop(model, forward, x, y, train, precision, device):
    """``steps -> seconds``: PyTorch's training (or inference) loop on the device, synchronised at both ends.

    ``model`` owns the parameters and the train/eval mode; ``forward`` is ``model``
    or its ``torch.compile`` wrapper.
    """
    import contextlib

    import torch

    inputs = torch.from_numpy(x).permute(0, 3, 1, 2).to(device).contiguous(memory_format=torch.channels_last)
    targets = torch.from_numpy(y.astype("int64")).to(device)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9,
                                nesterov=True, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler(device) if train and precision == "float16" else None

    def autocast():
        if precision == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device, dtype=getattr(torch, precision))

    def steps(count):
        model.train(train)
        _synchronize(torch, device)
        start = time.perf_counter()
        for _ in range(count):
            if not train:
                with torch.no_grad(), autocast():
                    forward(inputs)
                continue
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_fn(forward(inputs), targets)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
        _synchronize(torch, device)
        return time.perf_counter() - start

    return steps


def worker(task):
    if task["kind"] == "machine":
        emit(dict(kind="machine", **machine_worker(task)))
    elif task["implementation"] == "keras":
        keras_worker(task)
    else:
        torch_worker(task)


# ----------------------------------------------------------------------------- the run


def worker_environment(implementation, device):
    env = dict(os.environ, KERAS_BACKEND=BACKENDS.get(implementation, "torch"), TF_CPP_MIN_LOG_LEVEL="3",
               XLA_PYTHON_CLIENT_PREALLOCATE="false", PYTHONUNBUFFERED="1")
    if device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    return env


def run_worker(task, env, seconds, on_row):
    """Runs one worker process for at most ``seconds``; ``on_row`` gets each row as it arrives.

    Returns ``(rows, status)``; status: rc, timed_out, seconds, stderr_tail.  The
    worker's stderr is passed through (the log); a worker over time is stopped
    with its process group (its compile subprocesses too).
    """
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(task)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    rows, tail = [], collections.deque(maxlen=30)

    def read_stdout():
        for line in process.stdout:
            if line.startswith(ROW):
                rows.append(json.loads(line[len(ROW):]))
                on_row(rows[-1])
            else:
                sys.stdout.write(line)

    def read_stderr():
        for line in process.stderr:
            tail.append(line)
            sys.stderr.write(line)

    readers = [threading.Thread(target=read, daemon=True) for read in (read_stdout, read_stderr)]
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        process.wait(timeout=max(1.0, seconds))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        if process.poll() is None:  # over time, or this process is being stopped
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for reader in readers:
        reader.join(timeout=10)
    return rows, dict(rc=process.returncode, timed_out=timed_out, seconds=time.perf_counter() - start,
                      stderr_tail="".join(tail)[-3000:])


STARTED = time.perf_counter()


def say(text):
    """A progress line, stamped with the seconds since this process started."""
    print(f"[{time.perf_counter() - STARTED:5.0f} s] {text}", flush=True)


def progress(row):
    """The progress line of a row as it arrives from a worker."""
    if row.get("kind") == "machine":
        say(f"machine: {row.get('gpu') or row.get('device')}; matmul GFLOP/s "
            f"{json.dumps(row.get('matmul', {}).get('rates'))}")
    elif row.get("kind") == "info":
        say(f"JAX: backend {row.get('backend')}, devices {row.get('devices')}, float32 conv TF32: {row.get('tf32')}")
    elif row.get("error") or row.get("skipped"):
        say(f"{row['implementation']:16s} {row['model']:9s} {row['precision']:8s} "
            f"{'ERROR' if row.get('error') else 'skipped'}: {_shorten(row.get('error') or row.get('skipped'), 300)}")
    else:
        say(f"{row['implementation']:16s} {row['model']:9s} {row['precision']:8s} train {run.spread(row['train'])} "
            f"img/s, inference {run.spread(row['infer'])} img/s (first blocks {row['train_first_s']:.1f} s / "
            f"{row['infer_first_s']:.1f} s; job {row['job_seconds']:.0f} s)")


def write_outputs(result, args):
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(result, stream, indent=1)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as stream:
            stream.write(report(result))


def _names(text, allowed, option):
    names = [name for name in text.split(",") if name]
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise SystemExit(f"{option}: unknown {unknown}; expected some of {list(allowed)}")
    return names


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--compile-precisions", default=None,
                        help="precisions torch.compile is measured at (default: --precisions)")
    parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS))
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--batch", type=int, default=run.BATCH)
    parser.add_argument("--budget", type=float, default=280.0, help="seconds for the whole run (default 280)")
    parser.add_argument("--matmul-size", type=int, default=None, help="default 8192 on a GPU, 1024 on a CPU")
    parser.add_argument("--matmul-repeats", type=int, default=3)
    parser.add_argument("--report", default=None, help="Markdown report path")
    parser.add_argument("--json", default=None, help="JSON path: every raw number")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    args.models = _names(args.models, run.DEFAULT_MODELS.split(","), "--models")
    args.precisions = _names(args.precisions, PRECISIONS, "--precisions")
    args.compile_precisions = (args.precisions if args.compile_precisions is None
                               else _names(args.compile_precisions, PRECISIONS, "--compile-precisions"))
    args.implementations = _names(args.implementations, IMPLEMENTATIONS, "--implementations")
    if args.no_compile and "compile" in args.implementations:
        args.implementations.remove("compile")
    if not (args.models and args.precisions and args.implementations):
        raise SystemExit("nothing to measure: --models, --precisions and --implementations need a name each")
    return args


def main(argv=None):
    args = parse(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return None
    start = time.perf_counter()
    deadline = start + args.budget
    command = "python benchmarks/gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = dict(command=command, date=datetime.datetime.now().isoformat(timespec="seconds"),
                  settings=dict(models=args.models, precisions=args.precisions, batch=args.batch, steps=args.steps,
                                repeats=args.repeats, budget=args.budget, weights=WEIGHTS,
                                implementations=[IMPLEMENTATIONS[name] for name in args.implementations],
                                compile_precisions=args.compile_precisions if "compile" in args.implementations
                                else []),
                  machine={}, jax={}, rows=[], workers=[])

    def stop(signum, frame):  # `timeout` around the run: the rows so far still reach the files
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    try:
        measure_all(args, result, deadline)
    except SystemExit as error:
        result["error"] = f"run stopped early: {error}"
        raise
    finally:
        result["seconds"] = time.perf_counter() - start
        write_outputs(result, args)
        print(report(result), flush=True)
    return result


def measure_all(args, result, deadline):
    machine_task = dict(kind="machine", device=args.device, precisions=args.precisions, size=args.matmul_size,
                        repeats=args.matmul_repeats)
    rows, status = run_worker(machine_task, worker_environment("machine", args.device),
                              min(MACHINE_SECONDS, deadline - time.perf_counter()), progress)
    result["workers"].append(dict(implementation="machine", **status))
    machine = next((row for row in rows if row.get("kind") == "machine"), None)
    if machine is None:
        result["error"] = f"the machine worker failed (rc {status['rc']}): {_shorten(status['stderr_tail'], 1500)}"
        machine = dict(device="cpu" if args.device == "auto" else args.device)
    result["machine"] = {key: value for key, value in machine.items() if key != "kind"}
    device = result["machine"]["device"]
    names = list(args.implementations)
    for index, name in enumerate(names):
        wanted = jobs(args.models, args.compile_precisions if name == "compile" else args.precisions)
        seconds = allot(deadline - time.perf_counter(), [WEIGHTS[n] for n in names[index:]])
        implementation = IMPLEMENTATIONS[name]
        say(f"-- {implementation}: {len(wanted)} jobs, at most {seconds:.0f} s")
        task = dict(kind="throughput", implementation=name, device=device, jobs=wanted, steps=args.steps,
                    repeats=args.repeats, batch=args.batch, deadline=time.time() + seconds - GRACE)
        rows, status = run_worker(task, worker_environment(name, device), seconds + GRACE, progress)
        result["workers"].append(dict(implementation=implementation, **status))
        result["jax"].update(next(({k: v for k, v in row.items() if k != "kind"} for row in rows
                                   if row.get("kind") == "info"), {}))
        why = ("not measured: the worker was stopped at its time limit" if status["timed_out"] else
               f"not measured: the worker exited with status {status['rc']}: {_shorten(status['stderr_tail'], 1500)}")
        result["rows"] += [row for row in rows if row.get("kind") == "row"]
        result["rows"] += missing_rows(implementation, wanted, rows, why)
        write_outputs(result, args)


if __name__ == "__main__":
    main()
