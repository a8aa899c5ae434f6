"""keras_wrn against PyTorch eager, block for block: two warm processes that take turns.

    python benchmarks/head_to_head.py [--models wrn-16-1,wrn-16-4,resnet26] [--precisions float32,bfloat16]
                                      [--pairs 8] [--rounds 1] [--out benchmarks/head-to-head.md]

`run.py` measures each configuration in its own process, one after another.
On a shared VM the machine's speed drifts by up to 2x from one minute to the
next (2026-11-27: the same keras_wrn ResNet-26 bfloat16 configuration at 201
and at 375 img/s in two processes), so a ratio of two medians taken minutes
apart says more about the drift than about the frameworks.  Here both sides of
one comparison stay alive at once:

- one server process per side (``--serve``) builds the model exactly as
  `run.py`'s workers do (`run.keras_wrn_model` + `run.keras_runner`: ``model.fit``
  on a repeated batch, ``predict_on_batch``; `run.other_model` + `run.torch_runner`:
  the eager loop in ``channels_last``, ``torch.autocast`` below float32), runs
  a warm-up block of each phase and waits;
- the parent asks for one block at a time, never two at once, alternating
  the side that goes first (keras_wrn-PyTorch, then PyTorch-keras_wrn, ...), with
  a short pause between blocks so that the idle side's spinning threads have
  gone to sleep;
- each *pair* of neighbouring blocks gives one ratio (keras_wrn img/s over
  PyTorch img/s), taken seconds apart under the same conditions; the report
  gives the median ratio over all pairs with its min-max, the pairs keras_wrn
  won, and each side's median img/s.

``--rounds N`` starts N fresh pairs of servers per configuration and pools their
pairs (one process can be luckier than another in memory placement).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (benchmarks/run.py: the models and runners every benchmark shares)

SIDES = ("keras_wrn", "PyTorch eager")
# model key -> (training steps, inference steps) per block: about 1.5-5 s per block on a 2-core Xeon.
BLOCK_STEPS = {"wrn-16-1": (12, 40), "wrn-16-4": (3, 10), "resnet26": (3, 10)}
DEFAULT_BLOCK_STEPS = (4, 12)
PAUSE_SECONDS = 0.3  # between blocks: OpenMP/Eigen workers spin briefly after a parallel region


def serve(task, requests=sys.stdin, replies=None):
    """The server side: build ``task``'s model, warm up, then run blocks as the parent asks.

    Requests are JSON lines ``{"phase": "train"|"infer", "steps": n}``; each reply
    is ``{"seconds": s}``.  The first line written is ``{"ready": true, "params": n}``;
    an empty line or end of input ends the server.
    """
    import resource

    if replies is None:  # the replies keep the real stdout; anything the frameworks print goes to stderr
        replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
        sys.stdout.flush()
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    x, y = run.random_batch(task["batch"])
    if task["side"] == "keras_wrn":
        from keras_wrn.precision import precision_of
        from keras_wrn.stats import count_parameters

        model = run.keras_wrn_model(task["model"], task["precision"])
        if precision_of(model) != task["precision"]:
            raise SystemExit(f"keras_wrn built {task['model']} at {precision_of(model)}, not {task['precision']}")
        params = count_parameters(model.trainable_weights)
        runners = {phase: run.keras_runner(model, x, y, phase == "train") for phase in ("train", "infer")}
    else:
        import torch

        model = run.other_model(task["model"], "PyTorch eager").to(memory_format=torch.channels_last)
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        runners = {phase: run.torch_runner(model, x, y, phase == "train", task["precision"])
                   for phase in ("train", "infer")}
    for phase, steps in (("train", task["train_steps"]), ("infer", task["infer_steps"])):
        runners[phase](steps)  # warm-up: tracing, allocation
    replies.write(json.dumps({"ready": True, "params": params}) + "\n")
    replies.flush()
    for line in requests:
        if not line.strip():
            break
        request = json.loads(line)
        start = time.perf_counter()
        seconds = runners[request["phase"]](request["steps"])
        seconds = seconds if seconds is not None else time.perf_counter() - start
        replies.write(json.dumps({"seconds": seconds,
                                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}) + "\n")
        replies.flush()


class Server:
    """One side's server process (`serve`), driven line by line."""

    def __init__(self, task, backend="tensorflow"):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=backend)
        self.task = task
        self.log = tempfile.TemporaryFile(mode="w+")  # not a pipe: nobody reads it while the server runs
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", json.dumps(task)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        text=True, env=env)
        self.ready = self._reply()

    def _reply(self):
        line = self.process.stdout.readline()
        if not line:
            self.process.kill()
            self.process.wait()
            self.log.seek(0)
            raise RuntimeError(f"head-to-head server {self.task} failed:\n{self.log.read()[-3000:]}")
        return json.loads(line)

    def block(self, phase, steps):
        """Seconds of one block of ``steps`` steps of ``phase``."""
        self.process.stdin.write(json.dumps({"phase": phase, "steps": steps}) + "\n")
        self.process.stdin.flush()
        reply = self._reply()
        self.peak_rss_mib = reply["peak_rss_mib"]
        return reply["seconds"]

    def close(self):
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        self.process.wait(timeout=60)
        self.process.stdout.close()
        self.log.close()


def duel(model, precision, pairs, batch, steps, rounds=1, pause=PAUSE_SECONDS):
    """Images/s of both sides and their paired ratios for one model at one precision.

    Returns a dict: ``rates[side][phase]`` (img/s per block), ``ratios[phase]``
    (keras_wrn over PyTorch, one per pair), ``params[side]``, ``peak_rss_mib[side]``.
    """
    train_steps, infer_steps = steps
    result = dict(model=model, precision=precision, batch=batch, train_steps=train_steps, infer_steps=infer_steps,
                  pairs=pairs, rounds=rounds, rates={side: {"train": [], "infer": []} for side in SIDES},
                  ratios={"train": [], "infer": []}, params={}, peak_rss_mib={})
    for _ in range(rounds):
        servers = {}
        try:
            for side in SIDES:  # built one after the other: building must not overlap either
                servers[side] = Server(dict(side=side, model=model, precision=precision, batch=batch,
                                            train_steps=train_steps, infer_steps=infer_steps))
                result["params"][side] = servers[side].ready["params"]
            for phase, phase_steps in (("train", train_steps), ("infer", infer_steps)):
                for index in range(pairs):
                    order = SIDES if index % 2 == 0 else SIDES[::-1]
                    rate = {}
                    for side in order:
                        time.sleep(pause)
                        rate[side] = phase_steps * batch / servers[side].block(phase, phase_steps)
                        result["rates"][side][phase].append(rate[side])
                    result["ratios"][phase].append(rate[SIDES[0]] / rate[SIDES[1]])
            for side, server in servers.items():
                result["peak_rss_mib"][side] = max(result["peak_rss_mib"].get(side, 0.0), server.peak_rss_mib)
        finally:
            for server in servers.values():
                if server.process.poll() is None:
                    server.close()
    return result


def _span(values, digits):
    return (f"{statistics.median(values):,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})")


def report(results, command, machine):
    """The Markdown report of `duel` results."""
    lines = [
        "# Head to head: keras_wrn vs PyTorch eager, interleaved blocks",
        "",
        f"{datetime.date.today()}, {platform.machine()} {machine['cpu']}, {os.cpu_count()} CPUs; "
        + ", ".join(f"{name} {version}" for name, version in machine["versions"].items()) + ".",
        "CPU flags: " + (", ".join(machine["flags"]) or "none of the matrix units") + ".",
        "",
        f"Command: `{command}`",
        "",
        "Each configuration: a keras_wrn and a PyTorch server process, alive together, running one block at a time "
        "in alternating order (`benchmarks/head_to_head.py`); a pair is two neighbouring blocks, one per side. "
        "Ratio: keras_wrn img/s over PyTorch img/s within each pair; median (min-max) over all pairs.",
        "",
        "| model | precision | phase | steps per block x pairs x rounds | keras_wrn img/s | PyTorch img/s "
        "| x PyTorch, paired | pairs keras_wrn won |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for phase in ("train", "infer"):
            ratios = result["ratios"][phase]
            won = sum(ratio > 1.0 for ratio in ratios)
            lines.append(
                f"| {result['model']} | {result['precision']} | {'training' if phase == 'train' else 'inference'} "
                f"| {result[phase + '_steps']} x {result['pairs']} x {result['rounds']} "
                f"| {_span(result['rates']['keras_wrn'][phase], 0)} "
                f"| {_span(result['rates']['PyTorch eager'][phase], 0)} | {_span(ratios, 2)} "
                f"| {won}/{len(ratios)} |")
    return "\n".join(lines) + "\n"


def _machine():
    from keras_wrn.provenance import cpu_model_and_flags

    versions = subprocess.run(
        [sys.executable, "-c", "import json, keras, tensorflow, torch; print(json.dumps({'TensorFlow': "
         "tensorflow.__version__, 'Keras': keras.__version__, 'PyTorch': torch.__version__}))"],
        capture_output=True, text=True, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    cpu, flags = cpu_model_and_flags()
    import peak

    return dict(cpu=cpu, flags=[flag for flag in peak.FLAGS if flag in flags],
                versions=json.loads(versions.stdout.strip().splitlines()[-1]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=run.PRECISION_MODELS)
    parser.add_argument("--precisions", default="float32,bfloat16",
                        help="comma list of " + ",".join(run.PRECISIONS) + " (default %(default)s)")
    parser.add_argument("--pairs", type=int, default=8, help="pairs of blocks per phase and round (default 8)")
    parser.add_argument("--rounds", type=int, default=1, help="fresh server pairs per configuration (default 1)")
    parser.add_argument("--steps", default=None,
                        help="TRAIN,INFER steps per block for every model (default: per model, about 1.5-5 s)")
    parser.add_argument("--batch", type=int, default=run.BATCH)
    parser.add_argument("--out", default=None, help="Markdown report (default: print only)")
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(json.loads(args.serve))
        return None
    for name in ("pairs", "rounds", "batch"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name}: expected an integer >= 1, got {getattr(args, name)}")
    precisions = [p for p in args.precisions.split(",") if p]
    if not precisions or set(precisions) - set(run.PRECISIONS):
        raise SystemExit(f"--precisions: expected some of {list(run.PRECISIONS)}, got {args.precisions!r}")
    models = [m for m in args.models.split(",") if m]
    if not models or run.unknown_models(models):
        raise SystemExit(f"--models: expected WRN, pre-act ResNet or ResNet-26 keys such as {run.PRECISION_MODELS}, "
                         f"got {args.models!r} (unknown: {', '.join(run.unknown_models(models)) or 'none given'})")
    steps = None
    if args.steps is not None:
        try:
            steps = tuple(int(part) for part in args.steps.split(","))
        except ValueError:
            steps = ()
        if len(steps) != 2 or min(steps) < 1:
            raise SystemExit(f"--steps: expected TRAIN,INFER (two integers >= 1), got {args.steps!r}")
    command = "python benchmarks/head_to_head.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = []
    for model in models:
        for precision in precisions:
            result = duel(model, precision, args.pairs, args.batch, steps or BLOCK_STEPS.get(model, DEFAULT_BLOCK_STEPS),
                          args.rounds)
            results.append(result)
            print(f"{model:10s} {precision:9s} train x{statistics.median(result['ratios']['train']):.2f} "
                  f"inference x{statistics.median(result['ratios']['infer']):.2f}", flush=True)
    run.publish(report(results, command, _machine()), args.out)
    return results


if __name__ == "__main__":
    main()
