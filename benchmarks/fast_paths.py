"""What keras_wrn's two TensorFlow fast paths are worth: each switched on and off in one process.

    python benchmarks/fast_paths.py [--models resnet26,wrn-16-1,wrn-16-4] [--precisions float32,bfloat16]
                                    [--pairs 8] [--out benchmarks/fast_paths.md]

- **BatchNorm folded into its convolution at inference** (`keras_wrn.blocks.BatchNormalization`,
  ``fold_into_conv``): the same model (same seed, same weights) built twice, once
  as the builders make it and once with every BatchNormalization set to
  ``"never"``; ``predict_on_batch`` blocks of the two alternate.
- **The momentum update as one kernel** (`keras_wrn.optimizers.CoupledWeightDecaySGD`,
  TensorFlow's ``ResourceApplyMomentum``): two copies of the model, one whose
  optimizer takes the generic elementwise update; ``model.fit`` blocks alternate.

Both sides of a comparison live in one process and take turns (the order
alternating), so each ratio compares blocks seconds apart; separate processes
of one configuration differ by up to 2x on a shared VM.  Each row: the median of
the per-pair ratios (with the path over without), min-max, and the pairs won.
The models and runners are `run.py`'s.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (benchmarks/run.py: the models and runners every benchmark shares)
from head_to_head import BLOCK_STEPS, DEFAULT_BLOCK_STEPS  # noqa: E402
from keras_wrn.provenance import cpu_model_and_flags  # noqa: E402

PATHS = ("fold", "momentum kernel")


def _models(key, precision, path):
    """``{True: with the path, False: without}``, both from the same seed."""
    import keras

    from keras_wrn.blocks import BatchNormalization

    models = {}
    for enabled in (True, False):
        keras.utils.set_random_seed(0)
        model = run.keras_wrn_model(key, precision)
        if not enabled and path == "fold":
            for layer in model.layers:
                if isinstance(layer, BatchNormalization):
                    layer.fold_into_conv = "never"
        if not enabled and path == "momentum kernel":
            optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
            optimizer.use_momentum_kernel = False  # this instance only: the generic update
        models[enabled] = model
    return models


def compare(key, precision, path, pairs, steps):
    """Per-pair ratios (images/s with the path over without) and both sides' images/s."""
    x, y = run.random_batch()
    train = path == "momentum kernel"
    runners = {enabled: run.keras_runner(model, x, y, train)
               for enabled, model in _models(key, precision, path).items()}
    for runner in runners.values():
        runner(steps)  # warm-up: tracing
    rates = {"with": [], "without": []}
    for index in range(pairs):
        for enabled in ((True, False) if index % 2 == 0 else (False, True)):
            start = time.perf_counter()
            seconds = runners[enabled](steps)
            rates["with" if enabled else "without"].append(
                steps * run.BATCH / (seconds if seconds is not None else time.perf_counter() - start))
    return dict(model=key, precision=precision, path=path, steps=steps, pairs=pairs, rates=rates,
                ratios=[a / b for a, b in zip(rates["with"], rates["without"])])


def report(results, command):
    lines = ["# keras_wrn's TensorFlow fast paths, on and off in one process", "",
             f"{datetime.date.today()}, {cpu_model_and_flags()[0]}, {os.cpu_count()} CPUs, batch {run.BATCH}, "
             "32x32x3.", "", f"Command: `{command}`", "",
             "| path | phase | model | precision | steps per block x pairs | img/s with | img/s without "
             "| with / without, paired | pairs won |", "|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        ratios, rates = result["ratios"], result["rates"]
        lines.append(
            f"| {result['path']} | {'training' if result['path'] == 'momentum kernel' else 'inference'} "
            f"| {result['model']} | {result['precision']} | {result['steps']} x {result['pairs']} "
            f"| {statistics.median(rates['with']):,.0f} | {statistics.median(rates['without']):,.0f} "
            f"| {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) "
            f"| {sum(r > 1.0 for r in ratios)}/{len(ratios)} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet26,wrn-16-1,wrn-16-4")
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma list of: " + ", ".join(PATHS))
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--out", default=None, help="Markdown report (default: print only)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        task = json.loads(args.worker)
        print(json.dumps(compare(**task)))
        return None
    if args.pairs < 1:
        raise SystemExit(f"--pairs: expected an integer >= 1, got {args.pairs}")
    paths = [p for p in args.paths.split(",") if p]
    if not paths or set(paths) - set(PATHS):
        raise SystemExit(f"--paths: expected some of {list(PATHS)}, got {args.paths!r}")
    precisions = [p for p in args.precisions.split(",") if p]
    if not precisions or set(precisions) - set(run.PRECISIONS):
        raise SystemExit(f"--precisions: expected some of {list(run.PRECISIONS)}, got {args.precisions!r}")
    command = "python benchmarks/fast_paths.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = []
    for path in paths:
        for key in [m for m in args.models.split(",") if m]:
            for precision in precisions:
                train_steps, infer_steps = BLOCK_STEPS.get(key, DEFAULT_BLOCK_STEPS)
                task = dict(key=key, precision=precision, path=path, pairs=args.pairs,
                            steps=train_steps if path == "momentum kernel" else infer_steps)
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(task)],
                                     capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
                if out.returncode != 0:
                    raise SystemExit(f"fast-paths worker {task} failed:\n{out.stderr[-3000:]}")
                result = json.loads(out.stdout.strip().splitlines()[-1])
                results.append(result)
                print(f"{path:16s} {key:10s} {precision:9s} x{statistics.median(result['ratios']):.3f}", flush=True)
    run.publish(report(results, command), args.out)
    return results


if __name__ == "__main__":
    main()
