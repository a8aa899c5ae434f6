"""Where a result came from: the package's git commit and the machine it ran on."""

import os
import platform
import subprocess

__all__ = ["source_commit", "machine_description", "cpu_model_and_flags"]

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# CPU features that decide which kernels TensorFlow and PyTorch run (and so the speed).
_CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def source_commit():
    """``git describe``-style provenance of the package's code: commit hash, "+dirty" if modified."""
    try:
        commit = subprocess.run(["git", "-C", PACKAGE_ROOT, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", PACKAGE_ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + ("+dirty" if dirty else "")


def cpu_model_and_flags():
    """``(model name, set of /proc/cpuinfo flags)``; flags empty where /proc/cpuinfo is missing (not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            text = stream.read()
    except OSError:
        return platform.processor() or "unknown CPU", set()
    model, flags = "unknown CPU", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown CPU":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def machine_description():
    """This machine in one line, read now: CPU model, cores, the vector/matrix features that matter."""
    model, flags = cpu_model_and_flags()
    features = "+".join(feature for feature in _CPU_FEATURES if feature in flags) or "no AVX2"
    return f"{os.cpu_count()}-core {platform.machine()} {model} ({features})"
