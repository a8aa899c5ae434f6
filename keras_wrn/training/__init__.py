"""Resumable training with the papers' recipes (``keras-wrn train``) and evaluation (``keras-wrn evaluate``).

A run directory's files and its per-epoch commit protocol are described in
`keras_wrn.training.rundir`.  `train` runs one ``model.fit`` call per epoch on a
dataset whose shuffle and augmentation seeds are derived from ``(seed, epoch)``;
a run killed at any moment (even during a save) resumes with ``resume=True``
(``--resume``) from its last committed epoch and reaches the same weights as an
uninterrupted run.  Keras' `BackupAndRestore` is not used: it writes its backup
in place (not atomically) and cannot re-seed the input pipeline per epoch.

Modules:

- `loop`: `train`, and building a run's model (`build_for_run`);
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
