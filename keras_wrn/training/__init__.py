"""Resumable training with the papers' recipes (``keras-wrn train``) and evaluation (``keras-wrn evaluate``).

A run directory holds::

    run.json                 what the run is (model, recipe, epochs, data, seed, normalisation)
    state.json               the commit point: last completed epoch, history, best epoch
    checkpoint-EPOCH.weights.h5  model + optimizer state (iterations = schedule position)
    last.weights.h5, best.weights.h5
    log.csv, curves.png, tensorboard/
    test.json                with a validation split (``val_fraction``): the test split, measured once at the end

`train` runs one ``model.fit`` call per epoch on a dataset whose shuffle and
augmentation seeds are derived from ``(seed, epoch)``; after each epoch every
file is written to a temporary name and renamed into place, and ``state.json``
is replaced last.  A run killed at any moment (even during a save) resumes
with ``resume=True`` (``--resume``) from its last completed epoch and reaches
the same weights as an uninterrupted run.  Keras' `BackupAndRestore` is not
used: it writes its backup in place (not atomically) and cannot re-seed the
input pipeline per epoch.

Modules:

- `loop`: `train`, and building a run's model (`outputs_logits`);
- `rundir`: run.json/state.json, the per-epoch commit protocol, log.csv and curves.png;
- `normalization`: the run's mean/std or ZCA normalisation and the input pipeline;
- `distribute`: `make_strategy`, `use_cpu_devices` and the keras-team/keras#20585 workaround;
- `evaluation`: `evaluate` (top-1 error, confusion matrix);
- `progress`: a bar on a terminal, plain periodic lines in a piped log.

`load_data` lives in `keras_wrn.data` and is re-exported here for existing callers.
"""

from keras_wrn.data import load_data
from keras_wrn.training.distribute import DISTRIBUTE, make_strategy, use_cpu_devices
from keras_wrn.training.evaluation import evaluate
from keras_wrn.training.loop import outputs_logits, train

__all__ = ["DISTRIBUTE", "evaluate", "load_data", "make_strategy", "outputs_logits", "train", "use_cpu_devices"]
