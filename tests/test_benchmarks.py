"""The benchmark suite runs (a smoke run: its timings are not checked, this machine is noisy), and its peaks."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from keras_wrn.provenance import cpu_model_and_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "benchmarks", "run.py")
RESULTS = os.path.join(ROOT, "benchmarks", "results.md")
THROUGHPUT_COLUMNS = 13  # "| a | ... | k |".split("|"): 11 cells and the two empty ends


def _load(name):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _throughput_rows(text, model=None):
    """Cells of the throughput table's rows (of ``model`` only, if given)."""
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| model |")]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines
            if len(line.split("|")) == THROUGHPUT_COLUMNS]
    return [row for row in rows if model is None or row[0] == model]


def _native_bfloat16():
    from keras_wrn.precision import native_bfloat16

    return native_bfloat16()[0]


@pytest.fixture(scope="module")
def quick_precision_run():
    """One quick run of WRN-16-1, keras_wrn and PyTorch, at the default precisions; results.md's mtime around it."""
    before = os.stat(RESULTS).st_mtime_ns if os.path.exists(RESULTS) else None
    out = subprocess.run([sys.executable, RUN, "--quick", "--models", "wrn-16-1", "--implementations",
                          "keras_wrn,PyTorch eager", "--adapters", "off"], capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=600)
    after = os.stat(RESULTS).st_mtime_ns if os.path.exists(RESULTS) else None
    return out, before, after


@pytest.mark.slow  # the shared quick run: about 70 s
def test_benchmark_quick_run_measures_every_native_precision(quick_precision_run):
    out, _, _ = quick_precision_run
    assert out.returncode == 0, out.stderr[-2000:]
    rows = _throughput_rows(out.stdout, "wrn-16-1")
    expected = [("keras_wrn", "float32"), ("PyTorch eager", "float32")]
    if _native_bfloat16():
        expected += [("keras_wrn", "bfloat16"), ("PyTorch eager", "bfloat16")]
    assert [(row[1], row[2]) for row in rows] == expected
    assert len({row[3] for row in rows}) == 1  # the same trainable parameter count at every precision
    assert all(row[5] == "1.00" for row in rows if row[1] == "PyTorch eager")  # each against its own precision
    header = out.stdout.split("Command:")[0]
    flags = cpu_model_and_flags()[1]
    assert all(flag in header for flag in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags)
    for library in ("TensorFlow", "Keras", "PyTorch"):
        assert re.search(rf"{library} \d+\.\d+", out.stdout)
    assert "Command: `python benchmarks/run.py --quick --models wrn-16-1" in out.stdout


@pytest.mark.slow  # the shared quick run: about 70 s
def test_benchmark_no_row_exceeds_the_true_peak(quick_precision_run):
    out, _, _ = quick_precision_run
    assert out.returncode == 0, out.stderr[-2000:]
    peaks = dict(re.findall(r"^\| (\w+) \| .* = ([\d,]+) GFLOP/s \|", out.stdout, re.MULTILINE))
    if not peaks:
        pytest.skip("no true peak here: no known vector unit among the CPU flags (or no clock)")
    rows = _throughput_rows(out.stdout)
    assert rows and set(peaks) >= {row[2] for row in rows}  # a peak for every precision measured
    for row in rows:
        for cell in (row[6], row[9]):  # "GFLOP/s (% of peak, % of matmul)"
            gflops, of_peak = re.fullmatch(r"([\d.]+) \((\d+)%, (?:\d+%|-)\)", cell).groups()[:2]
            assert int(of_peak) <= 100 and float(gflops) <= float(peaks[row[2]].replace(",", "")), row


@pytest.mark.slow  # the shared quick run: about 70 s
def test_benchmark_quick_run_writes_no_results_file(quick_precision_run):
    out, before, after = quick_precision_run
    assert out.returncode == 0, out.stderr[-2000:]
    assert before == after


def test_true_peak_derivation_for_a_fake_flag_set():
    peak = _load("peak")
    peaks = peak.peaks({"avx512f", "amx_bf16"}, 2.0, 2, "given")
    assert peaks["float32"]["gflops"] == 256 and peaks["bfloat16"]["gflops"] == 4096
    unit = peaks["bfloat16"]["unit"]
    assert peaks["bfloat16"]["derivation"] == f"2 cores x 2.00 GHz (given) x 1,024 FLOP/cycle ({unit}) = 4,096 GFLOP/s"
    assert peaks["float16"]["gflops"] == 256  # no float16 unit: float32's FMA after conversion
    assert peak.peaks({"avx2", "fma", "avx512_bf16"}, 1.0, 4)["bfloat16"]["gflops"] == 512  # 4 x 1 GHz x 128
    assert peak.peaks({"avx2", "fma", "avx512_fp16", "amx_fp16"}, 1.0, 1)["float16"]["gflops"] == 1024
    assert peak.peaks(set(), 3.0, 8) == {}  # no known unit: no peak rather than a guess


def test_clock_under_load_is_measured_or_stated():
    peak = _load("peak")
    clock = peak.measure_clock(cores=1, seconds=0.02, samples=2)
    assert clock["source"] == "unknown" or 0.2 <= clock["ghz"] <= 8, clock
    assert clock["source"].startswith(("measured", "stated", "unknown"))


def test_default_precisions_and_tasks():
    run = _load("run")
    assert run.default_precisions({"amx_bf16"}, (True, "amx"), [])[0] == ["float32", "bfloat16"]
    assert run.default_precisions({"avx512_fp16"}, (False, "none"), [])[0] == ["float32"]  # float16 emulated
    assert run.default_precisions({"amx_fp16"}, (True, "amx"), [])[0] == ["float32", "bfloat16", "float16"]
    assert run.default_precisions(set(), (True, "GPU"), ["/physical_device:GPU:0"])[0] == ["float32", "bfloat16",
                                                                                          "float16"]
    tasks = list(run._tasks(["wrn-16-1", "resnet26-series"], 1, 1, ["keras_wrn", "plain Keras", "PyTorch eager"],
                            [], [], ["float32", "bfloat16"], ["wrn-16-1", "resnet26-series"]))
    below = [(t["model"], t["implementation"]) for t in tasks if t["precision"] != "float32"]
    assert below == [("wrn-16-1", "keras_wrn"), ("wrn-16-1", "PyTorch eager"),
                     ("resnet26-series", "keras_wrn"), ("resnet26-series", "PyTorch eager")]


def test_rounds_alternate_the_order_and_pool_each_configurations_blocks():
    run = _load("run")
    tasks = [dict(model="m", implementation=i) for i in ("keras_wrn", "PyTorch eager")]
    order = [t["implementation"] for t in run.round_order(tasks, 3)]
    assert order == ["keras_wrn", "PyTorch eager", "PyTorch eager", "keras_wrn", "keras_wrn", "PyTorch eager"]

    def row(implementation, rate, rss, precision="float32"):
        return dict(model="m", implementation=implementation, precision=precision, backend="tensorflow",
                    train=[rate, rate + 1], infer=[10 * rate], peak_rss_mib=rss, params=5, macs=1)

    rows = run.merge_rounds([row("keras_wrn", 1, 100), row("PyTorch eager", 1, 300), row("PyTorch eager", 2, 200),
                             row("keras_wrn", 4, 50), row("keras_wrn", 7, 70, "bfloat16")])
    assert [(r["implementation"], r["precision"], r["processes"]) for r in rows] == [
        ("keras_wrn", "float32", 2), ("PyTorch eager", "float32", 2), ("keras_wrn", "bfloat16", 1)]
    assert rows[0]["train"] == [1, 2, 4, 5] and rows[0]["infer"] == [10, 40] and rows[0]["peak_rss_mib"] == 100
    assert rows[1]["train"] == [1, 2, 2, 3] and rows[1]["peak_rss_mib"] == 300
    table = run.report(rows, [], None, dict(size=8, rates={"float32": {"NumPy": 100.0}}), "cmd", "tensorflow")
    assert "pools the blocks of 2 worker processes" in table
    assert "| m | keras_wrn | float32 | 5 | 3 (1-5) | 1.50 |" in table  # pooled medians: 3 against PyTorch's 2


@pytest.mark.slow
def test_benchmark_quick_run_compares_equal_architectures():
    out = subprocess.run([sys.executable, RUN, "--quick", "--models", "wrn-16-1,resnet26-series", "--other-backends",
                          "jax,torch"], capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = _throughput_rows(out.stdout, "wrn-16-1")
    expected = [("keras_wrn", "float32"), ("plain Keras", "float32"), ("PyTorch eager", "float32"),
                ("keras_wrn on jax", "float32"), ("keras_wrn on torch", "float32")]
    if _native_bfloat16():
        expected += [("keras_wrn", "bfloat16"), ("PyTorch eager", "bfloat16")]
    assert [(row[1], row[2]) for row in rows] == expected
    assert len({row[3] for row in rows}) == 1  # the same trainable parameter count
    series = _throughput_rows(out.stdout, "resnet26-series")
    assert [row[1] for row in series] == ["keras_wrn", "PyTorch eager"]  # no plain-Keras adapter model
    assert series[0][3] == series[1][3]  # frozen shared convs on both sides: equal trainable counts
    adapter_rows = [line.split("|") for line in out.stdout.splitlines() if line.startswith("| resnet26-series | ")
                    and len(line.split("|")) == 5]  # the adapter-cost table: model, train ratio, inference ratio
    assert len(adapter_rows) == 1 and float(adapter_rows[0][2].split()[0]) > 0


@pytest.mark.parametrize("argument, value, message", [
    ("--other-backends", "mxnet", "--other-backends: expected some of ['jax', 'torch']"),
    ("--other-backends", "tensorflow", "--other-backends: expected some of ['jax', 'torch']"),  # the main backend
    ("--implementations", "keras_wrn,caffe", "--implementations: unknown ['caffe']"),
    ("--precisions", "float32,float64", "--precisions: expected some of ['float32', 'bfloat16', 'float16']"),
    ("--rounds", "0", "--rounds: expected an integer >= 1, got 0"),
])
def test_benchmark_rejects_bad_arguments_before_measuring(argument, value, message):
    out = subprocess.run([sys.executable, RUN, argument, value, "--out", ""],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert message in out.stderr


@pytest.mark.slow
def test_precision_paths_smoke_run_writes_its_table(tmp_path):
    out = tmp_path / "paths.md"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "precision_paths.py"), "--models",
                             "wrn-16-1", "--rounds", "1", "--steps", "1", "--repeats", "1", "--out", str(out)],
                            capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| wrn-16-1 |")]
    paths = _load("precision_paths").PATHS
    assert [row.split("|")[2].strip() for row in rows] == list(paths)
    reference = next(row for row in rows if "PyTorch eager bf16" in row)
    assert reference.split("|")[4].strip() == "1.00" and reference.split("|")[6].strip() == "1.00"


# ----------------------------------------------------------------------------- benchmarks/head_to_head.py


def test_head_to_head_alternates_sides_and_pairs_neighbouring_blocks(monkeypatch):
    """With scripted block times: the side going first alternates, each ratio comes from one pair, rounds pool."""
    h2h = _load("head_to_head")
    calls = []
    seconds = {"keras_wrn": iter([1.0, 2.0, 4.0, 1.0, 1.0, 1.0, 1.0, 1.0] * 2),
               "PyTorch eager": iter([2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0] * 2)}

    class FakeServer:
        def __init__(self, task):
            self.side, self.ready, self.peak_rss_mib = task["side"], {"params": 7}, 1.0
            self.process = type("Done", (), {"poll": staticmethod(lambda: 0)})

        def block(self, phase, steps):
            calls.append((self.side, phase, steps))
            return next(seconds[self.side])

    monkeypatch.setattr(h2h, "Server", FakeServer)
    result = h2h.duel("wrn-16-1", "float32", pairs=4, batch=10, steps=(5, 3), rounds=2, pause=0)
    first_round = calls[:16]
    assert [side for side, _, _ in first_round[:8]] == ["keras_wrn", "PyTorch eager", "PyTorch eager", "keras_wrn"] * 2
    assert {(phase, steps) for _, phase, steps in first_round} == {("train", 5), ("infer", 3)}
    assert len(calls) == 32 and calls[16:] == first_round
    # training pairs of the first round: keras_wrn 1 s vs 2 s, 2 vs 2 (PyTorch went first), 4 vs 1, 1 vs 1
    assert result["ratios"]["train"][:4] == [2.0, 1.0, 0.25, 1.0]
    assert len(result["ratios"]["train"]) == len(result["ratios"]["infer"]) == 8  # pairs x rounds
    assert result["rates"]["keras_wrn"]["train"][0] == 5 * 10 / 1.0
    text = h2h.report([result], "python benchmarks/head_to_head.py", dict(cpu="cpu", flags=[], versions={}))
    row = next(line for line in text.splitlines() if line.startswith("| wrn-16-1 | float32 | training |"))
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[3] == "5 x 4 x 2"
    assert cells[6].startswith("1.00 (0.25-2.00)") and cells[7] == "2/8"


@pytest.mark.parametrize("argument, value, message", [
    ("--pairs", "0", "--pairs: expected an integer >= 1, got 0"),
    ("--rounds", "-1", "--rounds: expected an integer >= 1, got -1"),
    ("--precisions", "float64", "--precisions: expected some of ['float32', 'bfloat16', 'float16']"),
    ("--steps", "3", "--steps: expected TRAIN,INFER (two integers >= 1), got '3'"),
    ("--steps", "3,x", "--steps: expected TRAIN,INFER (two integers >= 1), got '3,x'"),
    ("--models", "wrn-16-1,bogus", "--models: expected WRN, pre-act ResNet or ResNet-26 keys such as "
                                   "wrn-16-1,wrn-16-4,resnet26, got 'wrn-16-1,bogus' (unknown: bogus)"),
    ("--models", "ror3-wrn-40-2", "(unknown: ror3-wrn-40-2)"),  # registered, but PyTorch has no reference of it
    ("--models", ",", "(unknown: none given)"),
])
def test_head_to_head_rejects_bad_arguments_before_measuring(argument, value, message):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "head_to_head.py"), argument, value],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert message in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow  # two server processes per configuration: about 40 s
def test_head_to_head_smoke_run_writes_its_table(tmp_path):
    out = tmp_path / "h2h.md"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "head_to_head.py"), "--models",
                             "wrn-16-1", "--precisions", "float32", "--pairs", "2", "--steps", "1,1", "--batch", "16",
                             "--out", str(out)],
                            capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in out.read_text().splitlines()
            if line.startswith("| wrn-16-1 |")]
    assert [row[2] for row in rows] == ["training", "inference"]
    for row in rows:
        assert row[3] == "1 x 2 x 1"
        ratio = float(row[6].split()[0])
        keras_rate, torch_rate = (float(row[i].split()[0].replace(",", "")) for i in (4, 5))
        assert ratio > 0 and keras_rate > 0 and torch_rate > 0
        assert int(row[7].split("/")[1]) == 2


@pytest.mark.slow  # starts one Keras process
def test_head_to_head_server_failure_names_the_configuration_and_shows_its_error():
    h2h = _load("head_to_head")
    with pytest.raises(RuntimeError, match="head-to-head server .*no-such-net") as raised:
        h2h.Server(dict(side="keras_wrn", model="no-such-net", precision="float32", batch=4, train_steps=1,
                        infer_steps=1))
    assert "no-such-net" in str(raised.value).split("failed:")[1]  # the server's own error, from its log


# ----------------------------------------------------------------------------- fast_paths.py, profile_step.py


@pytest.mark.parametrize("script, argument, value, message", [
    ("fast_paths", "--pairs", "0", "--pairs: expected an integer >= 1, got 0"),
    ("fast_paths", "--paths", "fold,jit", "--paths: expected some of ['fold', 'momentum kernel'], got 'fold,jit'"),
    ("fast_paths", "--precisions", "int8", "--precisions: expected some of ['float32', 'bfloat16', 'float16']"),
    ("profile_step", "--steps", "0", "--steps: expected an integer >= 1, got 0"),
    ("onednn_calls", "--steps", "0", "--steps: expected an integer >= 1, got 0"),
])
def test_fast_paths_and_profile_reject_bad_arguments_before_measuring(script, argument, value, message):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", f"{script}.py"), argument, value,
                          "--out", ""], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert message in out.stderr


def test_onednn_calls_counts_only_the_measured_steps():
    onednn = _load("onednn_calls")
    line = "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core,forward_training,src:f32,{}"
    text = "\n".join([line.format(100.0), "warm-up done", onednn.MARK, line.format(3.0), line.format(5.0),
                       "onednn_verbose,v1,info,oneDNN v3.7.3", "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,"
                       "undef,src:f32,1.5", "not a verbose line,exec,1,2,3"])
    summary = onednn.summarise(text, steps=2)
    assert summary == {("convolution", "forward_training", "brg_conv_fwd:avx512_core"): (4.0, 1.0),
                       ("reorder", "undef", "jit:uni"): (0.75, 0.5)}


def test_onednn_calls_by_shape_splits_rows_and_sets_the_frameworks_side_by_side():
    onednn = _load("onednn_calls")
    line = "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core,forward_training,src:f32,{},{}"
    small, large = "mb128_ic16oc16_ih32oh32kh3", "mb128_ic64oc64_ih8oh8kh3"
    text = lambda a, b: "\n".join([onednn.MARK, line.format(small, a), line.format(large, b)])
    results = {"tensorflow": onednn.summarise(text(3.0, 2.0), steps=1, by_shape=True),
               "torch": onednn.summarise(text(2.0, 2.0), steps=1, by_shape=True)}
    kind = ("convolution", "forward_training", "brg_conv_fwd:avx512_core")
    assert results["tensorflow"] == {kind + (small,): (3.0, 1.0), kind + (large,): (2.0, 1.0)}
    results["torch"][("reorder", "undef", "jit:blk", "3x3x16x16")] = (0.5, 1.0)  # only PyTorch ran it
    rows = onednn.table(results, by_shape=True).splitlines()
    assert rows[0].endswith("| TensorFlow / PyTorch |")
    assert rows[2] == f"| {', '.join(kind + (small,))} | 3.0 (1) | 2.0 (1) | 1.50 |"
    assert rows[3].endswith("| 2.0 (1) | 2.0 (1) | 1.00 |")
    assert rows[4].endswith("| - | 0.5 (1) | - |")
    assert rows[5] == "| total | 5.0 | 4.5 | 1.11 |"
    assert "TensorFlow / PyTorch" not in onednn.table(results)  # the default table keeps its three columns


@pytest.mark.slow  # two models per path: about 60 s
def test_fast_paths_smoke_run_writes_its_table(tmp_path):
    out = tmp_path / "paths.md"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "fast_paths.py"), "--models",
                             "wrn-16-1", "--precisions", "float32", "--pairs", "1", "--out", str(out)],
                            capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in out.read_text().splitlines()
            if line.startswith("| fold |") or line.startswith("| momentum kernel |")]
    assert [(row[0], row[1], row[2]) for row in rows] == [("fold", "inference", "wrn-16-1"),
                                                          ("momentum kernel", "training", "wrn-16-1")]
    for row in rows:
        assert float(row[7].split()[0]) > 0 and row[8].endswith("/1")


# ----------------------------------------------------------------------------- benchmarks/gpu.py (no GPU needed)


def _gpu_result(rows):
    """A result as benchmarks/gpu.py's `main` collects it, with made-up numbers."""
    return dict(command="python benchmarks/gpu.py", date="2026-01-01T00:00:00",
                settings=dict(models=["wrn-16-1"], precisions=["float32", "bfloat16", "float16"], batch=128,
                              steps=20, repeats=3, budget=270.0, compile_precisions=["bfloat16", "float32"]),
                machine=dict(device="cuda", gpu="Fake GPU", capability="9.0", memory_gib=80.0, cpus=16,
                             versions={"keras": "3.15.1"}, tf32={"cudnn.allow_tf32": True},
                             matmul=dict(size=8192, repeats=3, rates={
                                 "float32": {"PyTorch TF32": 100.0, "PyTorch strict float32": 50.0},
                                 "bfloat16": {"PyTorch": 400.0}})),
                jax=dict(backend="gpu", devices=["cuda:0"], tf32=True), rows=rows, workers=[])


def _gpu_row(implementation, precision, train, infer, **extra):
    return dict(kind="row", implementation=implementation, model="wrn-16-1", precision=precision, train=train,
                infer=infer, train_first_s=10.0, infer_first_s=2.0, params=175066, **extra)


def _table(text, title):
    """Rows (cells) of the Markdown table under the ``## title`` heading."""
    section = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines]


def test_gpu_report_tables_ratios_and_arithmetic():
    gpu = _load("gpu")
    rows = [_gpu_row("keras_wrn (JAX)", "float32", [1000.0, 1100.0, 1200.0], [4000.0], macs=1_000_000),
            _gpu_row("PyTorch eager", "float32", [550.0], [2000.0]),
            _gpu_row("torch.compile", "float32", [1100.0], [8000.0]),
            _gpu_row("keras_wrn (JAX)", "bfloat16", [2000.0], [6000.0], macs=1_000_000),
            dict(kind="row", implementation="PyTorch eager", model="wrn-16-1", precision="bfloat16",
                 error="RuntimeError: no kernel"),
            dict(kind="row", implementation="torch.compile", model="wrn-16-1", precision="bfloat16",
                 skipped="out of time")]
    text = gpu.report(_gpu_result(rows))
    train = _table(text, "Training")
    assert [row[:2] for row in train] == [["wrn-16-1", "float32"], ["wrn-16-1", "bfloat16"]]  # float16: no rows
    assert train[0][2:7] == ["1,100 (1,000-1,200)", "550 (550-550)", "1,100 (1,100-1,100)", "2.00", "1.00"]
    # 1,100 img/s x 1e6 MACs x 6 = 6.6 GFLOP/s; float32's reference is the faster (TF32) product, 100 GFLOP/s
    assert train[0][7] == "6.6 (7%) / 3.3 (3%) / 6.6 (7%)"
    assert train[1][3].startswith("error [") and train[1][4].startswith("skipped [") and train[1][5:7] == ["-", "-"]
    infer = _table(text, "Inference")
    assert infer[0][5:7] == ["2.00", "0.50"]
    assert infer[1][7] == "12.0 (3%) / - / -"  # 6,000 x 1e6 x 2 over bfloat16's 400
    assert "RuntimeError: no kernel" in text and "out of time" in text
    assert _table(text, "Model sizes") == [["wrn-16-1", "1,000,000", "175,066 / 175,066"]]
    assert "Fake GPU (compute capability 9.0, 80 GiB)" in text and "ran in TF32" in text


def test_gpu_ratios_and_gflops_skip_rows_without_numbers():
    gpu = _load("gpu")
    ours, theirs = _gpu_row("keras_wrn (JAX)", "float32", [300.0], [900.0]), _gpu_row("PyTorch eager", "float32",
                                                                                      [100.0], [300.0])
    failed = dict(ours, error="boom")
    assert gpu.ratio(ours, theirs, "train") == "3.00" and gpu.ratio(ours, theirs, "infer") == "3.00"
    assert gpu.ratio(ours, failed, "train") == "-" and gpu.ratio(ours, None, "train") == "-"
    assert gpu.gflops(ours, "train", 1e9) == 300 * 6 and gpu.gflops(ours, "infer", 1e9) == 900 * 2
    assert gpu.gflops(failed, "train", 1e9) is None and gpu.gflops(ours, "train", None) is None


def test_gpu_failing_job_becomes_an_error_row():
    gpu = _load("gpu")

    def broken():
        raise ValueError("float16 unsupported")

    row = gpu.measure("PyTorch eager", "wrn-16-4", "float16", broken)
    assert row["error"] == "ValueError: float16 unsupported" and row["job_seconds"] >= 0
    assert gpu.measure("PyTorch eager", "wrn-16-4", "float32", lambda: {"train": [1.0]})["train"] == [1.0]
    wanted = [("wrn-16-1", "bfloat16"), ("wrn-16-4", "bfloat16")]
    missing = gpu.missing_rows("PyTorch eager", wanted, [row | {"model": "wrn-16-1", "precision": "bfloat16"}],
                               "stopped")
    assert [(r["model"], r["precision"], r["error"]) for r in missing] == [("wrn-16-4", "bfloat16", "stopped")]


def test_gpu_job_order_and_budget_shares():
    gpu = _load("gpu")
    assert gpu.jobs(["wrn-16-1", "resnet26"], ["float32", "float16", "bfloat16"]) == [
        ("wrn-16-1", "bfloat16"), ("resnet26", "bfloat16"), ("wrn-16-1", "float32"), ("resnet26", "float32"),
        ("wrn-16-1", "float16"), ("resnet26", "float16")]
    assert gpu.allot(100.0, [5.0, 1.5, 3.5]) == 50.0 and gpu.allot(100.0, [3.5]) == 100.0
    assert gpu.allot(-3.0, [1.0]) == 0.0
    assert gpu.should_start(10.0, 20.0, 10.0) and not gpu.should_start(10.0, 20.0, 10.5)


def test_gpu_arguments():
    gpu = _load("gpu")
    args = gpu.parse(["--precisions", "bfloat16,float32", "--no-compile"])
    assert args.implementations == ["keras", "eager"] and args.compile_precisions == ["bfloat16", "float32"]
    with pytest.raises(SystemExit, match=r"--precisions: unknown \['float64'\]"):
        gpu.parse(["--precisions", "float64"])
    with pytest.raises(SystemExit, match="--models: unknown"):
        gpu.parse(["--models", "vgg-16"])


def test_gpu_script_parent_needs_no_framework():
    """The orchestrating process imports neither TensorFlow, PyTorch, JAX nor Keras (only its workers do)."""
    code = ("import sys; sys.argv = ['gpu.py']; "
            f"sys.path.insert(0, {os.path.join(ROOT, 'benchmarks')!r}); import gpu; "
            "print(gpu.parse(['--device', 'cpu']).models, "
            "sorted({'tensorflow', 'torch', 'jax', 'keras'} & {name.split('.')[0] for name in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "['wrn-16-1', 'wrn-16-4', 'resnet26'] []"
