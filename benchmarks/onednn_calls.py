"""oneDNN's own timing of every primitive a step runs, keras_wrn (TensorFlow) next to PyTorch eager.

    python benchmarks/onednn_calls.py [--model resnet26] [--precision float32] [--phase train] [--steps 3]
                                      [--by-shape]

Each side runs in a process with ``ONEDNN_VERBOSE=1`` (oneDNN prints one line
per executed primitive with its time in ms), the models and loops of `run.py`;
after a warm-up block the next ``--steps`` steps are summed per (primitive kind,
propagation, implementation), per step.  TensorFlow may run two primitives at
once (inter-op parallelism), which lengthens each; ``--tf-inter-op 1`` runs its
ops one at a time so that the per-call times compare with PyTorch's.  Only
oneDNN work is counted: PyTorch's own BatchNorm and ReLU kernels, TensorFlow's
Eigen ops and both frameworks' overheads are not.  ``--by-shape`` splits each
row by the primitive's problem (``mb128_ic16oc16_ih32...``) and adds the ratio of
the two frameworks' times where both ran it: the same kernel on the same problem,
so a ratio away from 1 is the library build, not the model.
"""

import argparse
import collections
import os
import subprocess
import sys


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (benchmarks/run.py: the models and runners every benchmark shares)

MARK = "==== measured steps ===="
SIDES = ("tensorflow", "torch")


def serve(side, key, precision, phase, steps):
    """Warm up, print `MARK`, run ``steps`` steps (in a process started with ONEDNN_VERBOSE=1)."""
    x, y = run.random_batch()
    if side == "tensorflow":
        step = run.keras_runner(run.keras_wrn_model(key, precision), x, y, phase == "train")
    else:
        import torch

        model = run.other_model(key, "PyTorch eager").to(memory_format=torch.channels_last)
        step = run.torch_runner(model, x, y, phase == "train", precision)
    step(steps)
    print(MARK, flush=True)
    step(steps)


def summarise(text, steps, by_shape=False):
    """``{(kind, propagation, implementation[, problem]): (ms per step, calls per step)}`` after `MARK`.

    ``by_shape`` adds the problem descriptor (the field before the time) to each key.
    """
    totals, calls = collections.Counter(), collections.Counter()
    for line in text.split(MARK)[-1].splitlines():
        fields = line.split(",")
        if not line.startswith("onednn_verbose") or "exec" not in fields:
            continue
        at = fields.index("exec")
        try:
            key, milliseconds = (fields[at + 2], fields[at + 4], fields[at + 3]), float(fields[-1])
            if by_shape:
                key += (fields[-2],)
        except (IndexError, ValueError):
            continue
        totals[key] += milliseconds
        calls[key] += 1
    return {key: (totals[key] / steps, calls[key] / steps) for key, _ in totals.most_common()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet26")
    parser.add_argument("--precision", default="float32", choices=run.PRECISIONS)
    parser.add_argument("--phase", default="train", choices=("train", "infer"))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--tf-inter-op", type=int, default=None,
                        help="TensorFlow inter-op threads (TF_NUM_INTEROP_THREADS; default: TensorFlow's)")
    parser.add_argument("--by-shape", action="store_true",
                        help="one row per primitive and problem shape, with TensorFlow / PyTorch per row")
    parser.add_argument("--out", default=None, help="write the table there too (default: print only)")
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.model, args.precision, args.phase, args.steps)
        return None
    if args.steps < 1:
        raise SystemExit(f"--steps: expected an integer >= 1, got {args.steps}")
    results = {}
    for side in SIDES:
        env = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="3")
        if side == "tensorflow" and args.tf_inter_op:
            env["TF_NUM_INTEROP_THREADS"] = str(args.tf_inter_op)
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--serve", side, "--model", args.model,
                              "--precision", args.precision, "--phase", args.phase, "--steps", str(args.steps)],
                             capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise SystemExit(f"oneDNN worker {side} failed:\n{out.stderr[-3000:]}")
        results[side] = summarise(out.stdout, args.steps, args.by_shape)
    command = "python benchmarks/onednn_calls.py " + " ".join(argv if argv is not None else sys.argv[1:])
    run.publish(f"Command: `{command}`\n\n" + table(results, args.by_shape), args.out)
    return results


def table(results, by_shape=False):
    """The Markdown table of ``{side: summarise(...)}``; ``by_shape`` adds a TensorFlow / PyTorch column."""
    heading = "primitive, propagation, implementation" + (", problem" if by_shape else "")
    ratio = " TensorFlow / PyTorch |" if by_shape else ""
    lines = [f"| {heading} | keras_wrn (TensorFlow) ms/step (calls) | PyTorch ms/step (calls) |{ratio}",
             "|---|---|---|" + ("---|" if by_shape else "")]
    for key in dict.fromkeys(list(results["tensorflow"]) + list(results["torch"])):
        cells = [f"{results[side][key][0]:.1f} ({results[side][key][1]:g})" if key in results[side] else "-"
                 for side in SIDES]
        if by_shape:
            both = all(key in results[side] and results[side][key][0] > 0 for side in SIDES)
            cells.append(f"{results['tensorflow'][key][0] / results['torch'][key][0]:.2f}" if both else "-")
        lines.append(f"| {', '.join(key)} | " + " | ".join(cells) + " |")
    totals = [sum(v[0] for v in results[side].values()) for side in SIDES]
    overall = (f" {totals[0] / totals[1]:.2f} |" if totals[1] else " - |") if by_shape else ""
    lines.append(f"| total | {totals[0]:.1f} | {totals[1]:.1f} |{overall}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
