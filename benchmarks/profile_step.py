"""Where a training step's time goes: keras_wrn on TensorFlow next to the same WRN in PyTorch eager.

    python benchmarks/profile_step.py [--models wrn-16-1,wrn-16-4] [--steps 5] [--out benchmarks/profile.md]

Needs the ``bench`` extra (``pip install -e .[bench]``: xprof reads TensorFlow's
profile).  Each side runs in its own process, batch 128 of 32x32x3:

- TensorFlow: ``tf.profiler`` around ``model.fit`` steps (after a warm-up fit);
  xprof's ``framework_op_stats`` gives host self-time per op type.
- PyTorch: ``torch.profiler`` around the eager training loop; self CPU time per op.

Both tables are shares of the profiled busy time (the profilers' own overhead
included), so compare shares, not the absolute numbers of `run.py`.
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

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
BATCH = 128
TOP = 10


def _inputs():
    rng = np.random.default_rng(0)
    return rng.standard_normal((BATCH, 32, 32, 3)).astype(np.float32), rng.integers(0, 10, BATCH).astype(np.int32)


def profile_tensorflow(key, steps):
    import tensorflow as tf
    from xprof.convert import raw_to_tool_data

    import keras_wrn

    x, y = _inputs()
    model = keras_wrn.create_model(key, classifier_activation=None)
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    logdir = tempfile.mkdtemp(prefix="tfprof-")
    tf.profiler.experimental.start(logdir)
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
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


def profile_torch(key, steps):
    import torch

    import reference_models

    depth, width = (int(part) for part in key.split("-")[1:3])
    model = reference_models.torch_wrn(depth, width)
    x, y = _inputs()
    inputs, targets = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y.astype(np.int64))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(inputs), targets).backward()
        optimizer.step()

    for _ in range(steps):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    totals = collections.Counter()
    for event in prof.key_averages():
        totals[event.key] += event.self_cpu_time_total
    return totals


def _shares(totals):
    whole = sum(totals.values()) or 1.0
    return [(name, 100.0 * value / whole) for name, value in totals.most_common(TOP)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="wrn-16-1,wrn-16-4")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(HERE, "profile.md"))
    parser.add_argument("--worker", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        side, key, steps = args.worker
        totals = (profile_tensorflow if side == "tensorflow" else profile_torch)(key, int(steps))
        print(json.dumps(dict(totals)))
        return
    lines = ["# Where a training step's time goes", "",
             f"{datetime.date.today()}, {os.cpu_count()} CPUs, batch {BATCH}, 32x32x3, {args.steps} profiled steps. "
             f"Command: `python benchmarks/profile_step.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
             ""]
    for key in args.models.split(","):
        results = {}
        for side in ("tensorflow", "torch"):
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", side, key, str(args.steps)],
                                 capture_output=True, text=True, env=env)
            if out.returncode != 0:
                raise SystemExit(f"profile worker {side} {key} failed:\n{out.stderr[-3000:]}")
            results[side] = collections.Counter(json.loads(out.stdout.strip().splitlines()[-1]))
        lines += [f"## {key}", "", "| keras_wrn (TensorFlow) op type | share | PyTorch eager op | share |",
                  "|---|---|---|---|"]
        idle = results["tensorflow"].pop("IDLE", 0.0)
        busy = sum(results["tensorflow"].values())
        left, right = _shares(results["tensorflow"]), _shares(results["torch"])
        for index in range(TOP):
            a = left[index] if index < len(left) else ("", None)
            b = right[index] if index < len(right) else ("", None)
            lines.append(f"| {a[0]} | {'' if a[1] is None else f'{a[1]:.1f}%'} | {b[0]} | "
                         f"{'' if b[1] is None else f'{b[1]:.1f}%'} |")
        lines += ["", f"TensorFlow's profile also counts {100 * idle / (idle + busy):.0f}% of its thread time as IDLE "
                  "(threads waiting for work); the shares above exclude it.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as stream:
            stream.write(text)


if __name__ == "__main__":
    main()
