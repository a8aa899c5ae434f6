"""--distribute: two CPU replicas and two worker processes give the single-device losses.

Both runs use the same global batch (16); BatchNorm statistics are synchronised
across replicas, so a distributed step computes the same function as the
single-device step and the logged losses agree to float32 round-off.
"""

import csv
import json
import os
import socket
import subprocess
import sys

import pytest

from test_training import write_image_folder

TRAIN = ["train", "wrn-16-1", "--epochs", "2", "--batch-size", "16", "--verbose", "0"]
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


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("127.0.0.1", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def assert_same_losses(reference, other):
    assert len(reference) == len(other) == 2
    for expected, got in zip(reference, other):
        for key in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"):
            assert float(got[key]) == pytest.approx(float(expected[key]), rel=2e-5, abs=1e-6), key


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
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = [
        cli(TRAIN + ["--data", str(data), "--out", str(run), "--distribute", "multi-worker"],
            env=dict(QUIET, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})))
        for index in range(2)
    ]
    for process in processes:
        finish(process)
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
