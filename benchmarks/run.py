"""Training and inference throughput: keras_wrn vs plain Keras vs PyTorch eager, and the arithmetic limit.

    python benchmarks/run.py [--models wrn-16-1,wrn-16-4] [--steps 20] [--repeats 5] [--out benchmarks/results.md]
    python benchmarks/run.py --quick      # a smoke run (tests use it); its numbers mean nothing

Batch 128 of 32x32x3 random inputs.  Each figure: one warm-up block of steps,
then ``--repeats`` blocks of ``--steps`` steps, images/s per block; the table
gives the median and the min-max spread.  Achieved GFLOP/s counts 2 FLOPs per
multiply-accumulate (keras_wrn.model_stats), 3x the forward pass for a training
step, and is compared with the float32 matrix-product GFLOP/s measured here
(NumPy, 2048^3).  Timings are only comparable within one run.
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
BATCH = 128


def matmul_gflops(size=2048, repeats=5):
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    a @ a
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def blocks(step, steps, repeats):
    step(steps)  # warm-up (tracing, allocation)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(steps)
        rates.append(steps * BATCH / (time.perf_counter() - start))
    return rates


def keras_steps(model, x, y, train):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(2)
    iterator = iter(dataset)

    def run(steps):
        for _ in range(steps):
            batch_x, batch_y = next(iterator)
            if train:
                model.train_on_batch(batch_x, batch_y)
            else:
                model.predict_on_batch(batch_x)

    return run


def torch_steps(model, x, y, train):
    import torch

    inputs, targets = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y.astype(np.int64))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
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


def measure(name, steps, repeats):
    import keras_wrn
    from reference_models import plain_keras_wrn, torch_wrn

    depth, width = (int(part) for part in name.split("-")[1:3])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int32)
    ours = keras_wrn.create_model(name, classifier_activation=None)
    macs = keras_wrn.model_stats(ours)["macs"]
    candidates = {"keras_wrn": lambda: ours, "plain Keras": lambda: plain_keras_wrn(depth, width),
                  "PyTorch eager": lambda: torch_wrn(depth, width)}
    rows = []
    for label, build in candidates.items():
        model = build()
        runner = torch_steps if label == "PyTorch eager" else keras_steps
        # Trainable parameters on both sides (Keras also counts BN moving statistics, Torch keeps them as buffers).
        params = (sum(p.numel() for p in model.parameters()) if label == "PyTorch eager"
                  else int(sum(np.prod(w.shape) for w in model.trainable_weights)))
        train = blocks(runner(model, x, y, True), steps, repeats)
        infer = blocks(runner(model, x, y, False), steps, repeats)
        rows.append(dict(model=name, implementation=label, params=params, train=train, infer=infer, macs=macs))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="wrn-16-1,wrn-16-4")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(HERE, "results.md"))
    parser.add_argument("--quick", action="store_true", help="smoke run: wrn-16-1, 1 step, 1 repeat, no file")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.steps, args.repeats, args.out = "wrn-16-1", 1, 1, None
    peak = matmul_gflops(512 if args.quick else 2048)
    rows = [row for name in args.models.split(",") for row in measure(name, args.steps, args.repeats)]
    lines = [
        "# Benchmarks: training and inference throughput",
        "",
        f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, batch {BATCH}, 32x32x3; "
        f"float32 matrix product {peak:.1f} GFLOP/s. Command: `python benchmarks/run.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        "| model | implementation | trainable params | train img/s (min-max) | x PyTorch | train GFLOP/s (% of matmul) "
        "| inference img/s (min-max) | x PyTorch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        torch_row = next(r for r in rows if r["model"] == row["model"] and r["implementation"] == "PyTorch eager")
        train, infer = statistics.median(row["train"]), statistics.median(row["infer"])
        gflops = train * row["macs"] * 2 * 3 / 1e9
        lines.append(
            f"| {row['model']} | {row['implementation']} | {row['params']:,} | {train:,.0f} "
            f"({min(row['train']):,.0f}-{max(row['train']):,.0f}) | {train / statistics.median(torch_row['train']):.2f} "
            f"| {gflops:.1f} ({100 * gflops / peak:.0f}%) | {infer:,.0f} ({min(row['infer']):,.0f}-"
            f"{max(row['infer']):,.0f}) | {infer / statistics.median(torch_row['infer']):.2f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as stream:
            stream.write(report)
    return rows


if __name__ == "__main__":
    main()
