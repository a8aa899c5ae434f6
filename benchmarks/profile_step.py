"""Where a step's time goes: keras_wrn on TensorFlow next to the same network in PyTorch eager.

    python benchmarks/profile_step.py [--models wrn-16-1,wrn-16-4] [--precision float32] [--phase train]
                                      [--steps 5] [--out benchmarks/profile.md]

Needs the ``bench`` extra (``pip install -e .[bench]``: xprof reads TensorFlow's
profile).  Each side runs in its own process, batch 128 of 32x32x3, the models
and loops of `run.py` (`run.keras_wrn_model`, `run.other_model`, `run.keras_runner`,
`run.torch_runner`: ``model.fit`` / ``predict_on_batch``; the eager loop in
``channels_last``, ``torch.autocast`` below float32):

- TensorFlow: ``tf.profiler`` around the steps (after a warm-up block);
  xprof's ``framework_op_stats`` gives host self-time per op type.
- PyTorch: ``torch.profiler`` around the steps; self CPU time per op.

Each table gives milliseconds of self time per step and the share of the
profiled busy time (the profilers' own overhead included): compare shares and
per-op times side by side, not the absolute step rates of `run.py`.
"""

import argparse
import collections
import datetime
import glob
import json
import os
import subprocess
import sys
import tempfile


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (benchmarks/run.py: the models and runners every benchmark shares)
from keras_wrn.provenance import cpu_model_and_flags  # noqa: E402

TOP = 10
PHASES = ("train", "infer")


def profile_tensorflow(key, steps, precision="float32", phase="train"):
    """Host self time per TensorFlow op type (microseconds, over ``steps`` steps)."""
    import tensorflow as tf
    from xprof.convert import raw_to_tool_data

    x, y = run.random_batch()
    step = run.keras_runner(run.keras_wrn_model(key, precision), x, y, phase == "train")
    step(steps)
    logdir = tempfile.mkdtemp(prefix="tfprof-")
    tf.profiler.experimental.start(logdir)
    step(steps)
    tf.profiler.experimental.stop()
    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    data, _ = raw_to_tool_data.xspace_to_tool_data(paths, "framework_op_stats", {})
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    totals = collections.Counter()
    for row in table["rows"]:
        values = dict(zip(columns, [cell.get("v") if cell else None for cell in row["c"]]))
        if values.get("host_or_device") == "Host":
            totals[values["type"]] += values["total_self_time"] or 0.0
    return totals


def profile_torch(key, steps, precision="float32", phase="train"):
    """Self CPU time per PyTorch op (microseconds, over ``steps`` steps)."""
    import torch

    x, y = run.random_batch()
    model = run.other_model(key, "PyTorch eager").to(memory_format=torch.channels_last)
    step = run.torch_runner(model, x, y, phase == "train", precision)
    step(steps)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step(steps)
    totals = collections.Counter()
    for event in prof.key_averages():
        totals[event.key] += event.self_cpu_time_total
    return totals


def _shares(totals, steps):
    """The `TOP` ops: ``(name, milliseconds per step, share of the busy time in %)``."""
    whole = sum(totals.values()) or 1.0
    return [(name, value / 1000.0 / steps, 100.0 * value / whole) for name, value in totals.most_common(TOP)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="wrn-16-1,wrn-16-4")
    parser.add_argument("--precision", default="float32", choices=run.PRECISIONS)
    parser.add_argument("--phase", default="train", choices=PHASES, help="a training step or inference (default train)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(HERE, "profile.md"))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        side, key = args.worker.split(":")
        profile = profile_tensorflow if side == "tensorflow" else profile_torch
        print(json.dumps(dict(profile(key, args.steps, args.precision, args.phase))))
        return
    if args.steps < 1:
        raise SystemExit(f"--steps: expected an integer >= 1, got {args.steps}")
    what = "training step" if args.phase == "train" else "inference step"
    lines = [f"# Where a {what}'s time goes", "",
             f"{datetime.date.today()}, {cpu_model_and_flags()[0]}, {os.cpu_count()} CPUs, batch {run.BATCH}, 32x32x3, "
             f"{args.precision}, {args.steps} profiled steps. "
             f"Command: `python benchmarks/profile_step.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
             ""]
    for key in args.models.split(","):
        results = {}
        for side in ("tensorflow", "torch"):
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", f"{side}:{key}", "--steps",
                                  str(args.steps), "--precision", args.precision, "--phase", args.phase],
                                 capture_output=True, text=True, env=env)
            if out.returncode != 0:
                raise SystemExit(f"profile worker {side} {key} failed:\n{out.stderr[-3000:]}")
            results[side] = collections.Counter(json.loads(out.stdout.strip().splitlines()[-1]))
        lines += [f"## {key}", "", "| keras_wrn (TensorFlow) op type | ms/step | share | PyTorch eager op | ms/step "
                  "| share |", "|---|---|---|---|---|---|"]
        idle = results["tensorflow"].pop("IDLE", 0.0)
        busy = sum(results["tensorflow"].values())
        left, right = _shares(results["tensorflow"], args.steps), _shares(results["torch"], args.steps)

        def cells(ops, index):
            if index >= len(ops):
                return "|  |  |"
            name, milliseconds, share = ops[index]
            return f"| {name} | {milliseconds:.1f} | {share:.1f}% |"

        for index in range(TOP):
            lines.append(cells(left, index) + cells(right, index)[1:])
        lines += ["", f"Busy time per step: keras_wrn {busy / 1000 / args.steps:.1f} ms, PyTorch "
                  f"{sum(results['torch'].values()) / 1000 / args.steps:.1f} ms. TensorFlow's times add up ops "
                  "that ran at the same time on its inter-op threads, so its busy time can exceed the step's."]
        lines += ["", f"TensorFlow's profile also counts {100 * idle / (idle + busy):.0f}% of its thread time as IDLE "
                  "(threads waiting for work); the shares above exclude it.", ""]
    run.publish("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
