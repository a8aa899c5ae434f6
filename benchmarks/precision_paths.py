"""Which bfloat16 path keras_wrn should use on TensorFlow: the candidates side by side, with PyTorch.

    python benchmarks/precision_paths.py [--models wrn-16-1,wrn-16-4,resnet26] [--rounds 2]
                                         [--out benchmarks/precision_paths.md]

The candidates, each in its own worker process (`run.worker`, batch 128, the
same ``fit``/``predict_on_batch`` timing as `run.py`):

- float32: keras_wrn's default.
- Keras ``mixed_bfloat16`` with Keras' BatchNormalization: the policy alone
  (``KERAS_WRN_FUSED_BATCH_NORM=0``); Keras' layer casts bfloat16 activations to
  float32 and normalises with separate ops.
- Keras ``mixed_bfloat16`` with the fused BatchNormalization: what
  ``precision="bfloat16"`` builds (`keras_wrn.blocks.BatchNormalization` takes
  the bfloat16 activations into TensorFlow's fused kernel).
- float32 model under TensorFlow's oneDNN bfloat16 auto-mixed-precision graph
  rewrite (``auto_mixed_precision_onednn_bfloat16``): a process-wide Grappler
  option that rewrites every graph, saved with nothing.
- PyTorch eager, ``channels_last``, float32 and bfloat16 ``torch.autocast``.

Separate processes of one configuration differ by 10-20% on a shared host, so
the whole set runs ``--rounds`` times, in a rotated order each round, and the
table gives the median over every block of every round.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402  (benchmarks/run.py: the worker and the runners)

# name -> (implementation, precision, environment, TensorFlow rewrite on)
PATHS = {
    "keras_wrn float32": ("keras_wrn", "float32", {}, False),
    "Keras mixed_bfloat16 + Keras BatchNormalization": ("keras_wrn", "bfloat16",
                                                        {"KERAS_WRN_FUSED_BATCH_NORM": "0"}, False),
    "Keras mixed_bfloat16 + fused BatchNormalization (precision='bfloat16')": ("keras_wrn", "bfloat16", {}, False),
    "float32 + TensorFlow oneDNN bf16 graph rewrite": ("keras_wrn", "float32", {}, True),
    "PyTorch eager float32, channels_last": ("PyTorch eager", "float32", {}, False),
    "PyTorch eager bf16 autocast, channels_last": ("PyTorch eager", "bfloat16", {}, False),
}


def worker(task):
    if task.pop("rewrite"):
        import tensorflow as tf

        tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
    return run.worker(task)


def measure(path, key, steps, repeats):
    implementation, precision, environment, rewrite = PATHS[path]
    task = dict(kind="throughput", model=key, implementation=implementation, precision=precision, steps=steps,
                repeats=repeats, batch=run.BATCH, rewrite=rewrite)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow", **environment)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(task)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"worker {path} {key} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="wrn-16-1,wrn-16-4,resnet26")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="steps per block (default: run.py's per model)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(HERE, "precision_paths.md"))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    command = "python benchmarks/precision_paths.py " + " ".join(argv if argv is not None else sys.argv[1:])
    models = [m for m in args.models.split(",") if m]
    names = list(PATHS)
    samples = {(key, name): {"train": [], "infer": []} for key in models for name in names}
    for round_index in range(args.rounds):
        order = names[round_index % len(names):] + names[:round_index % len(names)]
        for key in models:
            steps = args.steps or run.STEPS.get(key, (20, 0))[0]
            for name in order:
                result = measure(name, key, steps, args.repeats)
                for phase in ("train", "infer"):
                    samples[key, name][phase] += result[phase]
                print(f"round {round_index + 1} {key} {name}: train {statistics.median(result['train']):,.0f} "
                      f"infer {statistics.median(result['infer']):,.0f} img/s", flush=True)
    from keras_wrn.provenance import machine_description

    lines = ["# bfloat16 paths on TensorFlow, against PyTorch", "",
             f"{datetime.date.today()}, {machine_description()}; batch "
             f"{run.BATCH}, 32x32x3; {args.rounds} rounds of every configuration in rotated order, "
             f"{args.repeats} blocks each; images/s, median over all blocks (min-max).",
             f"Command: `{command}`", "",
             "| model | path | train img/s | x PyTorch bf16 | inference img/s | x PyTorch bf16 |", "|---|---|---|---|---|---|"]
    reference = "PyTorch eager bf16 autocast, channels_last"
    for key in models:
        ref = {phase: statistics.median(samples[key, reference][phase]) for phase in ("train", "infer")}
        for name in names:
            cells = []
            for phase in ("train", "infer"):
                values = samples[key, name][phase]
                cells += [run.spread(values), f"{statistics.median(values) / ref[phase]:.2f}"]
            lines.append(f"| {key} | {name} | " + " | ".join(cells) + " |")
    run.publish("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
