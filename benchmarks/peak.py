"""The CPU's true arithmetic peak per precision: cores x clock under load x FLOP/cycle/core of its best unit.

- FLOP/cycle/core: `UNITS`, per precision the units an ISA flag announces, best
  first; the first whose flags the CPU has is the one the peak assumes.  The
  counts are the issue rates of the architecture manuals: an FMA is 2 FLOP; two
  512-bit FMA ports (Xeon Scalable Gold/Platinum and later; a part with one port
  has half, so this is an upper bound there); an AMX tile product TDPBF16PS or
  TDPFP16PS (16x16 float32 accumulators, K = 32 pairs: 16,384 FLOP) issues every
  16 cycles.  A precision without a unit of its own is computed in float32 after
  conversion, so its peak is float32's.
- Clock under load: `measure_clock` runs a chain of dependent integer adds (one
  cycle of latency each, on every x86-64 and AArch64 core) on every core at once,
  compiled at run time with ``cc``: adds per second of the thread's own CPU time
  (``CLOCK_THREAD_CPUTIME_ID``) = cycles per second, the clock the cores hold with
  all of them busy (turbo included), whether or not other processes took turns on
  them meanwhile (the share of wall time the loops got is reported too).  Without
  a compiler, or for a result outside 0.2-8 GHz, it falls back to the lowest clock
  the system states (`stated_clocks`).  An integer loop may run at a higher clock
  than heavy AVX-512/AMX work, so the peak is, if anything, too high: a percentage
  of it is never flattering.
- Cores: ``os.cpu_count()``, the logical CPUs; on a VM these are vCPUs.
"""

import glob
import os
import re
import shutil
import statistics
import subprocess
import tempfile

# precision -> units, best first: (CPU flags that must all be present, FLOP/cycle/core, what the count is).
UNITS = {
    "float32": (
        (("avx512f",), 64, "AVX-512 FMA: 2 ports x 16 lanes x 2"),
        (("avx2", "fma"), 32, "AVX2 FMA: 2 ports x 8 lanes x 2"),
    ),
    "bfloat16": (
        (("amx_bf16",), 1024, "AMX bf16: one TDPBF16PS 16x16x32 tile product, 16,384 FLOP per 16 cycles"),
        (("avx512_bf16",), 128, "AVX512_BF16: VDPBF16PS, 2 ports x 32 pairs x 2"),
        (("avx512f",), 64, "no bfloat16 unit: float32 AVX-512 FMA after conversion, 2 ports x 16 lanes x 2"),
        (("avx2", "fma"), 32, "no bfloat16 unit: float32 AVX2 FMA after conversion, 2 ports x 8 lanes x 2"),
    ),
    "float16": (
        (("amx_fp16",), 1024, "AMX fp16: one TDPFP16PS 16x16x32 tile product, 16,384 FLOP per 16 cycles"),
        (("avx512_fp16",), 128, "AVX512_FP16: VFMADD*PH, 2 ports x 32 lanes x 2"),
        (("avx512f",), 64, "no float16 unit: float32 AVX-512 FMA after conversion, 2 ports x 16 lanes x 2"),
        (("avx2", "fma"), 32, "no float16 unit: float32 AVX2 FMA after conversion, 2 ports x 8 lanes x 2"),
    ),
}
# The /proc/cpuinfo flags the figures rely on, in the order the report lists them.
FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")
# Dependent adds; the loop counter is a separate chain, so each iteration costs ADDS cycles.
ADDS = 64
_CLOCK_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__)
#define ADD "add %1, %0\n\t"
#elif defined(__aarch64__)
#define ADD "add %0, %0, %1\n\t"
#else
#error "no add chain for this architecture"
#endif
#define A4 ADD ADD ADD ADD
#define A16 A4 A4 A4 A4
#define A64 A16 A16 A16 A16

static double now(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* CPU seconds of `iterations` iterations; their wall seconds in *wall. */
static double chain(long iterations, double *wall) {
    unsigned long x = 0, one = 1;
    double start = now(CLOCK_THREAD_CPUTIME_ID), wall_start = now(CLOCK_MONOTONIC);
    for (long i = 0; i < iterations; i++)
        __asm__ volatile(A64 : "+r"(x) : "r"(one));
    *wall = now(CLOCK_MONOTONIC) - wall_start;
    return now(CLOCK_THREAD_CPUTIME_ID) - start;
}

int main(int argc, char **argv) {
    double seconds = atof(argv[1]), wall, cpu, cpu_total = 0, wall_total = 0, best = 0;
    int samples = atoi(argv[2]);
    long iterations = 1000;
    while (chain(iterations, &wall) < seconds / 4)
        iterations *= 2;
    for (int s = 0; s < samples; s++) {
        cpu = chain(iterations, &wall);
        cpu_total += cpu;
        wall_total += wall;
        if (64.0 * iterations / cpu > best)
            best = 64.0 * iterations / cpu;
    }
    printf("%.6f %.4f\n", best / 1e9, cpu_total / wall_total);
    return 0;
}
"""


def unit(precision, flags):
    """``(flop_per_cycle_per_core, description)`` of the best unit for ``precision`` in ``flags``; None if none."""
    return next(((flops, text) for needed, flops, text in UNITS[precision] if set(needed) <= set(flags)), None)


def peaks(flags, ghz, cores, clock_source="given"):
    """``{precision: dict(gflops, flop_per_cycle, unit, derivation)}``; a precision without a known unit is left out.

    ``clock_source`` says how ``ghz`` was obtained; it goes into the derivation text.
    """
    result = {}
    for precision in UNITS:
        found = unit(precision, flags)
        if found is None:
            continue
        flops, text = found
        gflops = cores * ghz * flops
        result[precision] = dict(
            gflops=gflops, flop_per_cycle=flops, unit=text,
            derivation=f"{cores} cores x {ghz:.2f} GHz ({clock_source}) x {flops:,} FLOP/cycle ({text}) "
                       f"= {gflops:,.0f} GFLOP/s")
    return result


def stated_clocks():
    """``{source: GHz}`` of the clocks the system states: cpufreq max/base, /proc/cpuinfo's cpu MHz, the model name."""
    clocks = {}
    for name in ("cpuinfo_max_freq", "base_frequency", "scaling_max_freq"):
        values = []
        for path in glob.glob(f"/sys/devices/system/cpu/cpu[0-9]*/cpufreq/{name}"):
            try:
                with open(path, encoding="ascii") as stream:
                    values.append(int(stream.read().strip()) / 1e6)  # kHz
            except (OSError, ValueError):
                pass
        if values:
            clocks[f"cpufreq {name}"] = min(values)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            text = stream.read()
    except OSError:
        text = ""
    mhz = [float(value) for value in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.MULTILINE)]
    if mhz:
        clocks["/proc/cpuinfo cpu MHz"] = min(mhz) / 1e3
    named = re.search(r"^model name\s*:.*?([\d.]+)\s*GHz", text, re.MULTILINE)
    if named:
        clocks["model name"] = float(named.group(1))
    return {source: ghz for source, ghz in clocks.items() if ghz > 0}


def measure_clock(cores=None, seconds=0.25, samples=4):
    """The clock every core holds under load: ``dict(ghz, source, detail)``.

    Measured with `_add_chain` where it can be, else the lowest stated clock
    (`stated_clocks`); ``ghz`` is None where neither is available.  ``source`` is
    the short form the derivations quote, ``detail`` the whole story.
    """
    cores = cores or os.cpu_count() or 1
    measured, why = _add_chain(cores, seconds, samples)
    if measured is not None:
        rates = [ghz for ghz, _ in measured]
        low, high = f"{min(rates):.2f}", f"{max(rates):.2f}"
        share = statistics.mean(on_cpu for _, on_cpu in measured)
        return dict(ghz=statistics.mean(rates), source="measured: dependent-add loop",
                    detail=f"measured: a chain of dependent integer adds (1 cycle each) on all {cores} cores at once, "
                           f"adds per CPU-second, best of {samples} samples of {seconds} s per core: "
                           f"{low if low == high else low + '-' + high} GHz; the loops were on CPU {100 * share:.0f}% "
                           "of the wall time")
    stated = stated_clocks()
    if not stated:
        return dict(ghz=None, source="unknown", detail=f"not measured ({why}) and no clock stated by the system")
    source = min(stated, key=stated.get)
    listed = ", ".join(f"{name} {ghz:.2f} GHz" for name, ghz in stated.items())
    return dict(ghz=stated[source], source=f"stated: {source}",
                detail=f"not measured ({why}); the lowest clock the system states, of {listed}; turbo may exceed it")


def _add_chain(cores, seconds, samples):
    """``([(GHz, share of wall time on CPU) per core], None)`` from ``cores`` add loops at once, or ``(None, why)``."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return None, "no C compiler"
    with tempfile.TemporaryDirectory() as directory:
        source, binary = os.path.join(directory, "clock.c"), os.path.join(directory, "clock")
        with open(source, "w", encoding="ascii") as stream:
            stream.write(_CLOCK_SOURCE)
        built = subprocess.run([compiler, "-O2", "-o", binary, source], capture_output=True, text=True)
        if built.returncode != 0:
            return None, f"{os.path.basename(compiler)} failed: {built.stderr.strip()[:200]}"
        runs = [subprocess.Popen([binary, str(seconds), str(samples)], stdout=subprocess.PIPE, text=True)
                for _ in range(cores)]
        outputs = [run.communicate()[0] for run in runs]
    try:
        measured = [tuple(float(value) for value in output.split()) for output in outputs]
        if any(len(values) != 2 for values in measured):
            raise ValueError
    except ValueError:
        return None, "the add loop printed no rate"
    if not all(0.2 <= ghz <= 8 for ghz, _ in measured):
        return None, f"implausible add-loop rates {[ghz for ghz, _ in measured]} GHz"
    return measured, None
