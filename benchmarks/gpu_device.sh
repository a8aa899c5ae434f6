#!/usr/bin/env bash
# The GPU table of issue 15 (benchmarks/gpu.py), as run once on a lent GPU machine: in the repository root,
# with $OUT naming an empty folder; about 5 minutes on one H100 (`bash benchmarks/gpu_device.sh`).
# That machine has PyTorch and JAX (CUDA) but no Keras, no TensorFlow and no internet: Keras, namex and
# optree come from the wheels in .whl/ (downloaded for CPython 3.12 x86_64; their other needs are there).
# .whl/ is not in the repository; fetch it where pip reaches an index, then carry it to the GPU machine:
#   for w in keras==3.15.1 namex==0.1.0 optree==0.20.0; do python -m pip download --no-deps --only-binary=:all: \
#     --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl "$w"; done
# gpu.py's --budget (280 s) covers its workers; `timeout` is the last resort (gpu.py writes what it has on
# SIGTERM).  torch.compile comes last and gets what is left: bfloat16 first, then float32, then float16;
# what does not fit is listed as skipped.  Arguments are passed on to gpu.py after these (the last one wins),
# e.g. `bash benchmarks/gpu_device.sh --precisions float32,float16 --compile-precisions float32,float16`.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
{
  date -u
  nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  python3 - <<'PY'
import importlib.metadata as metadata, platform
print("Python", platform.python_version())
for name in ("torch", "triton", "jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "keras", "optree", "numpy"):
    try:
        print(name, metadata.version(name))
    except metadata.PackageNotFoundError:
        print(name, "not installed")
PY
  command -v cc gcc || echo "no C compiler on PATH (torch.compile's Triton launchers need one)"
} 2>&1 | tee "$OUT/gpu.log"
PYTHONUNBUFFERED=1 timeout -k 10 310 python3 benchmarks/gpu.py --device cuda --budget 280 \
  --models wrn-16-1,wrn-16-4,resnet26 --precisions float32,bfloat16,float16 \
  --compile-precisions bfloat16,float32,float16 --steps 20 --repeats 5 \
  --report "$OUT/gpu.md" --json "$OUT/gpu.json" "$@" 2>&1 | tee -a "$OUT/gpu.log"
echo "exit status ${PIPESTATUS[0]}, $SECONDS s in all" | tee -a "$OUT/gpu.log"
