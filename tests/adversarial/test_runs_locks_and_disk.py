"""Adversarial runs (issue 14), each failing on the main before it: two processes in one directory (class 3),
damaged run files and arguments that failed late (class 11), a disk that fills while checkpointing (class 12)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers import write_image_folder
from keras_wrn.cli import main
from keras_wrn.decathlon import compare_modes, train_decathlon
from keras_wrn.io import LOCK_FILE, locked_directory
from keras_wrn.release import release
from keras_wrn.training import rundir, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("runs") / "data", classes=2, train_per_class=4,
                              test_per_class=2)


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory):
    """A one-epoch run of two; tests copy it before damaging it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    with pytest.raises(_Stop):
        train("wrn-16-1", data, out, epochs=2, batch_size=8, verbose=0, on_commit=_stop_after_first_epoch)
    return out


class _Stop(Exception):
    pass


def _stop_after_first_epoch(stage, epoch):
    if stage == "logs-written" and epoch == 1:
        raise _Stop()


def _python(code, **kwargs):
    return subprocess.Popen([sys.executable, "-c", code], **kwargs)


# --- class 3: one writer per directory ------------------------------------------------------------------

def test_3_a_second_writer_is_refused_while_the_first_holds_the_directory(data, tmp_path):
    out = tmp_path / "run"
    with locked_directory(out):
        assert (out / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(ValueError, match=f"--out .* is in use by another keras-wrn process \\(pid {os.getpid()}"):
            with locked_directory(out):
                pass
        with pytest.raises(ValueError, match="is in use by another keras-wrn process"):
            train("wrn-16-1", data, out, epochs=1, verbose=0)
        with pytest.raises(ValueError, match="is in use"):
            train_decathlon("resnet26-w0.5.cifar10-jpeg-e8", str(data), ["digits"], "parallel", str(out))
        with pytest.raises(ValueError, match="is in use"):
            compare_modes("resnet26-w0.5.cifar10-jpeg-e8", str(out), epochs=1)
    assert not out.exists()  # created for the lock, nothing written: removed again


def test_3_two_releases_into_one_folder_are_serialised(tmp_path, monkeypatch, finished_run):
    releases = tmp_path / "releases"
    releases.mkdir()
    monkeypatch.setenv("KERAS_WRN_WEIGHTS_DIR", str(releases))
    with locked_directory(releases, "the releases folder"):
        with pytest.raises(ValueError, match="the releases folder .* is in use"):
            release(finished_run, "wrn-16-1.tiny-e1", "unused")
    assert os.listdir(releases) == []


@pytest.mark.slow
def test_3_two_train_processes_into_one_out_one_is_refused(data, tmp_path):
    out = tmp_path / "run"
    first = _python(f"from keras_wrn.cli import main; main(['train', 'wrn-16-1', '--data', {str(data)!r}, '--out', "
                    f"{str(out)!r}, '--epochs', '2', '--batch-size', '8', '--verbose', '0'])",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (out / LOCK_FILE).exists(), first)
    assert main(["train", "wrn-16-1", "--data", str(data), "--out", str(out), "--epochs", "2", "--verbose", "0"]) == 2
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert json.loads((out / "state.json").read_text())["completed_epochs"] == 2
    assert not (out / LOCK_FILE).exists()


def test_3_a_sigkilled_writer_leaves_no_stuck_lock(tmp_path):
    out = tmp_path / "run"
    child = _python(f"import os, signal; from keras_wrn.io import locked_directory\n"
                    f"with locked_directory({str(out)!r}): os.kill(os.getpid(), signal.SIGKILL)")
    assert child.wait(timeout=60) == -signal.SIGKILL
    assert (out / LOCK_FILE).exists()  # left behind, but not held
    with locked_directory(out):
        assert (out / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert not (out / LOCK_FILE).exists()


def _wait_for(condition, process, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


# --- class 11: damaged run files and late argument errors --------------------------------------------------

def _copy(run, tmp_path):
    return shutil.copytree(run, tmp_path / "run")


@pytest.mark.parametrize("name, content, message", [
    ("state.json", b'{"completed_epochs": 1, "hist', "state.json: the run state is not valid JSON"),
    ("state.json", b"\xff\xfe garbage", "state.json: the run state is not valid JSON"),
    ("state.json", b"[1, 2]", "state.json: the run state is JSON of type list; expected dict"),
    ("state.json", b'{"completed_epochs": 1, "history": [{}], "checkpoint": "../../etc/x"}',
     "state.json: damaged run state \\(field 'checkpoint'"),
    ("state.json", b'{"completed_epochs": "1", "history": [], "checkpoint": null}',
     "state.json: damaged run state \\(field 'completed_epochs'"),
    ("run.json", b'{"model": "wrn-16-1", "rec', "run.json: the run description is not valid JSON"),
    ("run.json", b'"wrn-16-1"', "run.json: the run description is JSON of type str"),
    ("checkpoint-1.weights.h5", b"\x89HDF\r\n\x1a\n truncated", "checkpoint-1.weights.h5 \\(epoch 1's checkpoint\\) "
     "cannot be loaded .*truncated or damaged: restore it"),
    ("checkpoint-1.weights.h5", None, "checkpoint-1.weights.h5 \\(epoch 1's checkpoint, named by state.json\\) is "
     "missing"),
])
def test_11_damaged_run_files_name_the_file_and_what_to_do(finished_run, data, tmp_path, capsys, name, content,
                                                           message):
    run = _copy(finished_run, tmp_path)
    if content is None:
        os.remove(run / name)
    else:
        (run / name).write_bytes(content)
    code = main(["train", "wrn-16-1", "--data", str(data), "--out", str(run), "--epochs", "2", "--batch-size", "8",
                 "--verbose", "0", "--resume"])
    error = capsys.readouterr().err
    assert code == 2, error
    assert len(error.strip().splitlines()) == 1 and "Traceback" not in error
    assert error.startswith("keras-wrn train: error: ")
    assert re.search(message, error), error


@pytest.mark.slow
def test_11_a_truncated_checkpoint_keeps_the_run_resumable_once_restored(finished_run, data, tmp_path):
    run = _copy(finished_run, tmp_path)
    good = (run / "checkpoint-1.weights.h5").read_bytes()
    (run / "checkpoint-1.weights.h5").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="truncated or damaged"):
        train("wrn-16-1", data, run, epochs=2, batch_size=8, verbose=0, resume=True)
    (run / "checkpoint-1.weights.h5").write_bytes(good)
    assert len(train("wrn-16-1", data, run, epochs=2, batch_size=8, verbose=0, resume=True)) == 2


def test_11_out_under_a_file_fails_before_any_data_is_read(tmp_path, capsys):
    (tmp_path / "file").write_text("the user's file\n")
    code = main(["train", "wrn-16-1", "--data", str(tmp_path / "no-such-data"), "--out",
                 str(tmp_path / "file" / "run"), "--epochs", "1"])
    error = capsys.readouterr().err
    assert code == 2 and "lies under the file" in error and "Traceback" not in error, error
    assert (tmp_path / "file").read_text() == "the user's file\n"


def test_11_decathlon_train_without_source_names_the_option(tmp_path, capsys):
    code = main(["decathlon", "train", "--data", str(tmp_path), "--domains", "svhn", "--mode", "parallel",
                 "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2 and "--mode parallel starts every domain from a source network: give --source" in error, error
    assert not (tmp_path / "out").exists()


# --- class 12: disk full while checkpointing ------------------------------------------------------------------

def test_12_no_room_for_a_commit_is_a_clean_error_naming_the_last_committed_epoch(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_statvfs = os.statvfs

    class Full:
        def __init__(self, path):
            status = real_statvfs(path)
            self.f_frsize, self.f_bavail = status.f_frsize, 0

    def fill_after_first_epoch(stage, epoch):
        if stage == "logs-written" and epoch == 1:
            monkeypatch.setattr(rundir.os, "statvfs", Full)

    with pytest.raises(rundir.RunWriteError, match="writing epoch 2 failed \\(No space left on device: .* MiB needed, "
                       "0.0 MiB free\\); epoch 1 is the last committed one .*--resume continues from epoch 2"):
        train("wrn-16-1", data, out, epochs=2, batch_size=8, verbose=0, on_commit=fill_after_first_epoch)
    assert json.loads((out / "state.json").read_text())["completed_epochs"] == 1
    assert sorted(p.name for p in out.glob("*.weights.h5")) == ["best.weights.h5", "checkpoint-1.weights.h5",
                                                               "last.weights.h5"]
    monkeypatch.setattr(rundir.os, "statvfs", real_statvfs)
    assert len(train("wrn-16-1", data, out, epochs=2, batch_size=8, verbose=0, resume=True)) == 2


@pytest.mark.slow
def test_12_a_real_full_disk_exits_cleanly_and_resumes(data, tmp_path):
    """A 7 MiB tmpfs holds epoch 1 of WRN-16-1 (three 1.5 MiB weights files) but not epoch 2 (needs root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=7m", "tmpfs", str(disk)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        command = [sys.executable, "-m", "keras_wrn", "train", "wrn-16-1", "--data", str(data), "--out",
                   str(disk / "run"), "--epochs", "3", "--batch-size", "8", "--verbose", "0"]
        full = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert full.returncode == 2, (full.returncode, full.stderr)  # was a raw OSError, then exit 139
        assert full.stderr.strip().splitlines() == [full.stderr.strip()] and "Traceback" not in full.stderr
        assert "writing epoch 2 failed (No space left on device" in full.stderr
        assert "epoch 1 is the last committed one" in full.stderr
        assert not [name for name in os.listdir(disk / "run") if name.startswith(".tmp-")]
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads((disk / "run" / "state.json").read_text())["completed_epochs"] == 3
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
