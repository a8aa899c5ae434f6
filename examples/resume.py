"""Continue an interrupted run from its last completed epoch (same weights as an unbroken run).

    python examples/resume.py runs/wrn-16-1

Everything the run needs (model, recipe, epochs, seed, data) is read from its run.json.
"""

import argparse
import json
import os

from keras_wrn.training import train

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("run", help="a run directory written by keras-wrn train")
args = parser.parse_args()

with open(os.path.join(args.run, "run.json"), encoding="utf-8") as stream:
    run = json.load(stream)
with open(os.path.join(args.run, "state.json"), encoding="utf-8") as stream:
    print(f"resuming after epoch {json.load(stream)['completed_epochs']} of {run['epochs']}")
history = train(run["model"], run["data"], args.run, recipe=run["recipe"], epochs=run["epochs"],
                batch_size=run["batch_size"], seed=run["seed"], dropout=run["dropout"],
                limit_train=run["limit_train"], normalization=run.get("normalization", "meanstd"),
                init_weights=run.get("init_weights"), freeze_backbone=run.get("freeze_backbone", False),
                resume=True, verbose=2)
print(f"done: {len(history)} epochs, test error {100 * (1 - history[-1]['val_accuracy']):.2f}%")
