"""--distribute: two CPU replicas and two worker processes give the single-device losses.

Both runs use the same global batch (16); BatchNorm statistics are synchronised
across replicas, so a distributed step computes the same function as the
single-device step and the logged losses agree to float32 round-off.
"""

import csv
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time

import pytest

from helpers import write_image_folder

# The finetune recipe's learning rate (0.01, then 0.001) keeps the comparison well conditioned; see
# LOSS_TOLERANCE.
TRAIN = ["train", "wrn-16-1", "--recipe", "finetune", "--epochs", "2", "--batch-size", "16", "--verbose", "0"]
QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def read_log(run):
    with open(os.path.join(run, "log.csv"), encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def cli(args, env=QUIET, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "keras_wrn"] + args, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def finish(process, timeout=300):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


# Worker ports.  TensorFlow's gRPC server binds the port named in TF_CONFIG itself, on 0.0.0.0 and
# without SO_REUSEPORT, so a port cannot be handed to it already bound (nor kept reserved by a socket
# of ours until it starts): between our check and its bind another process may take the port.  Two
# things make that harmless:
# - ports are drawn below the kernel's ephemeral range (ip_local_port_range), which bind(0) and
#   outgoing connections draw from, so only a process naming that very port explicitly can take it;
# - a worker that cannot bind fails at once with "Could not start gRPC server"; the whole two-worker
#   run is then retried on fresh ports (its peer, which may wait for it forever, is killed first).
BIND_FAILURE = "Could not start gRPC server"
WORKER_ATTEMPTS = 3
PORT_RANDOM = random.SystemRandom()  # not the tests' seeded generators: parallel runs draw apart


def ephemeral_port_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as stream:
            low, high = (int(part) for part in stream.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def unused_ports(count):
    """``count`` distinct ports outside the ephemeral range that nothing holds right now."""
    low, high = ephemeral_port_range()
    candidates = range(10000, low) if low > 11000 else range(high + 1, 65536)
    ports = []
    while len(ports) < count:
        port = PORT_RANDOM.choice(candidates)
        if port in ports:
            continue
        with socket.socket() as probe:  # the address gRPC binds
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
        ports.append(port)
    return ports


def run_workers(args, count, logs, timeout=300):
    """Run ``keras-wrn ARGS`` as ``count`` workers on 127.0.0.1; their outputs, or None if a port was taken."""
    ports = unused_ports(count)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes, paths = [], []
    for index in range(count):
        paths.append(logs / f"worker-{index}-ports-{'-'.join(map(str, ports))}.log")
        with open(paths[-1], "w", encoding="utf-8") as log:  # a file, not a pipe: nothing blocks on output
            config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            processes.append(subprocess.Popen([sys.executable, "-m", "keras_wrn"] + args,
                                              env=dict(QUIET, TF_CONFIG=config), stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + timeout
    try:
        # Until all succeed or one fails: a failed worker's peers would wait for it.
        while any(process.poll() is None for process in processes):
            if any(process.returncode not in (None, 0) for process in processes):
                break
            assert time.monotonic() < deadline, f"workers still running after {timeout} s"
            time.sleep(0.5)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
    outputs = [path.read_text(encoding="utf-8", errors="replace") for path in paths]
    for process, output in zip(processes, outputs):
        if process.returncode != 0 and BIND_FAILURE in output:
            return None
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    return outputs


# A distributed step sums the two halves' gradients in another order than one device does, so
# each step differs by float32 round-off (`test_one_mirrored_step_is_the_single_device_step` pins
# that: < 2e-2 of each variable's step, 6.6e-5 to 2.8e-3 measured), and later steps amplify it,
# the more the higher the learning rate.  With the wrn recipe (lr 0.1) two epochs on a 2-core Xeon (AVX-512, AMX) ended
# 1.2e-4 (training loss) and 3e-3 (test loss) apart, 2026-11-26, although a 2-core EPYC had agreed
# within 2e-5; with the finetune recipe both stayed within 4.3e-5 on the Xeon.  Accuracies and
# learning rates must agree exactly.
LOSS_TOLERANCE = {"loss": 3e-4, "val_loss": 3e-4}


def assert_same_losses(reference, other):
    assert len(reference) == len(other) == 2
    for expected, got in zip(reference, other):
        for key in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"):
            assert float(got[key]) == pytest.approx(float(expected[key]), rel=LOSS_TOLERANCE.get(key, 1e-7),
                                                    abs=1e-6), key


ONE_STEP = """
import os, sys
import numpy as np, keras
import keras_wrn
from keras_wrn.optimizers import CoupledWeightDecaySGD
from keras_wrn.training.distribute import make_strategy, synchronize_batch_norm, use_cpu_devices

use_cpu_devices(2)
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = (3 + 2 * rng.normal(size=(16, 32, 32, 3))).astype("float32")
y = rng.integers(0, 3, 16)


def build():
    model = keras_wrn.create_model("wrn-16-1", classes=3, compile=False)
    model.compile(optimizer=CoupledWeightDecaySGD(0.1), loss="sparse_categorical_crossentropy")
    return model


single = build()
start = [w.numpy() for w in single.weights]
single.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
strategy = make_strategy("mirrored")
with strategy.scope():
    mirrored = build()
    synchronize_batch_norm(mirrored, strategy)
assert strategy.num_replicas_in_sync == 2
mirrored.set_weights(start)
mirrored.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
worst = 0.0
for a, b, w in zip(single.weights, mirrored.weights, start):
    step = np.abs(a.numpy() - w).max()
    if step:
        worst = max(worst, float(np.abs(a.numpy() - b.numpy()).max() / step))
print("WORST", worst)
"""


@pytest.mark.slow
def test_one_mirrored_step_is_the_single_device_step(tmp_path):
    """Same weights, same batch of 16: one step on two replicas (synchronised BN) = one step on one device."""
    out = subprocess.run([sys.executable, "-c", ONE_STEP], capture_output=True, text=True, timeout=300,
                         env=dict(QUIET, KERAS_WRN_FUSED_BATCH_NORM="0"))
    assert out.returncode == 0, out.stderr[-3000:]
    worst = float(out.stdout.split("WORST")[1])
    # Every weight, BN scale/offset and moving statistic moved by the same update to round-off: worst
    # 6.6e-5 to 2.8e-3 of a variable's step over random initialisations (summing another order, net
    # steps with cancellation); unsynchronised BN statistics put it at 0.84.
    assert worst < 2e-2


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("distribute")
    data = write_image_folder(root / "data")
    # Multi-replica runs synchronise BN statistics through Keras' own (unfused) arithmetic; the
    # reference runs the same arithmetic on one device, so the comparison stays at round-off.
    finish(cli(TRAIN + ["--data", str(data), "--out", str(root / "single")],
               env=dict(QUIET, KERAS_WRN_FUSED_BATCH_NORM="0")))
    return data, root, read_log(root / "single")


@pytest.mark.slow
def test_mirrored_over_two_cpu_devices_matches_one_device(single_run):
    data, root, reference = single_run
    run = root / "mirrored"
    finish(cli(TRAIN + ["--data", str(data), "--out", str(run), "--distribute", "mirrored", "--cpu-devices", "2"]))
    assert json.loads((run / "run.json").read_text())["distribute"] == "mirrored"
    assert_same_losses(reference, read_log(run))


@pytest.mark.slow
def test_two_workers_on_localhost_match_one_device(single_run):
    data, root, reference = single_run
    run = root / "workers"
    logs = root / "worker-logs"
    logs.mkdir()
    args = TRAIN + ["--data", str(data), "--out", str(run), "--distribute", "multi-worker"]
    for _ in range(WORKER_ATTEMPTS):
        shutil.rmtree(run, ignore_errors=True)  # what an attempt that lost its port may have left
        if run_workers(args, 2, logs) is not None:
            break
    else:
        pytest.fail(f"{WORKER_ATTEMPTS} attempts lost a worker port to another process; see {logs}")
    assert_same_losses(reference, read_log(run))
    # Only the chief wrote the run directory.
    assert not [name for name in os.listdir(run) if name.startswith(("worker", ".tmp-"))]


@pytest.mark.slow
def test_multi_worker_without_tf_config_is_refused(single_run, tmp_path):
    data, _, _ = single_run
    env = {key: value for key, value in QUIET.items() if key != "TF_CONFIG"}
    process = cli(TRAIN + ["--data", str(data), "--out", str(tmp_path / "run"), "--distribute", "multi-worker"], env=env)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 2
    assert "TF_CONFIG environment variable is not set" in output
    assert not (tmp_path / "run").exists()


def multi_worker_strategy_stub():
    """An uninitialised MultiWorkerMirroredStrategy: the workaround only checks the strategy's type."""
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy.__new__(tf.distribute.MultiWorkerMirroredStrategy)


def tiny_model():
    import keras

    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])


def test_multi_worker_workaround_is_undone_after_the_block_and_on_errors():
    from keras.src.backend.tensorflow import trainer

    from keras_wrn.training.distribute import multi_worker_fit_workaround

    original, model = trainer.reduce_per_replica, tiny_model()
    with multi_worker_fit_workaround(model, multi_worker_strategy_stub()):
        assert trainer.reduce_per_replica is not original and "_maybe_symbolic_build" in vars(model)
    assert trainer.reduce_per_replica is original and "_maybe_symbolic_build" not in vars(model)
    with pytest.raises(KeyError, match="inside fit"):
        with multi_worker_fit_workaround(model, multi_worker_strategy_stub()):
            raise KeyError("inside fit")
    assert trainer.reduce_per_replica is original and "_maybe_symbolic_build" not in vars(model)
    with multi_worker_fit_workaround(model, None):  # other strategies: nothing is patched
        assert trainer.reduce_per_replica is original and "_maybe_symbolic_build" not in vars(model)


def test_multi_worker_workaround_checks_the_keras_it_patches(monkeypatch):
    import keras
    from keras.src.backend.tensorflow import trainer

    from keras_wrn.training.distribute import multi_worker_fit_workaround

    model = tiny_model()
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    with pytest.warns(RuntimeWarning, match=r"keras-team/keras#20585 was tested with Keras .*, not 3\.99\.0"):
        with multi_worker_fit_workaround(model, multi_worker_strategy_stub()):
            pass
    monkeypatch.delattr(trainer, "reduce_per_replica")
    with pytest.raises(RuntimeError, match=r"Keras 3\.99\.0 does not have.*reduce_per_replica is missing"):
        with multi_worker_fit_workaround(model, multi_worker_strategy_stub()):
            pass
    assert "_maybe_symbolic_build" not in vars(model)
