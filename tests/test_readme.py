"""Every Python snippet of README.md runs as written, in a fresh process, with network-free stand-ins only
for the files a snippet reads that are not here (a photo, a PyTorch checkpoint, a training batch)."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import reference_params
from keras_wrn.data.datasets import SAMPLE_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as stream:
    BLOCKS = re.findall(r"^```python\n(.*?)^```", stream.read(), re.S | re.M)

# Code run before a snippet that contains the key, for names the snippet uses without defining.
PRELUDES = {
    'net["digits"].fit(x, y': "import numpy as np\nrng = np.random.default_rng(0)\n"
                              "x = rng.normal(size=(4, 64, 64, 3)).astype('float32')\ny = np.arange(4) % 10\n",
}

DRIVER = """
import json, sys
for index, (prelude, code) in enumerate(json.load(open(sys.argv[1]))):
    namespace = {"__name__": "__main__"}
    exec(prelude, namespace)
    exec(compile(code, f"README.md python block {index + 1}", "exec"), namespace)
    print("BLOCK OK", index + 1, flush=True)
"""


def test_the_readme_has_the_snippets_this_test_knows():
    assert len(BLOCKS) >= 5 and any("decode_predictions" in block for block in BLOCKS)
    for key in PRELUDES:
        assert any(key in block for block in BLOCKS), key


@pytest.mark.slow
def test_every_python_snippet_runs(tmp_path):
    import torch

    cat = sorted(os.listdir(os.path.join(SAMPLE_DIR, "test", "cat")))[0]
    shutil.copyfile(os.path.join(SAMPLE_DIR, "test", "cat", cat), tmp_path / "cat.jpg")  # a real photo
    torch.save(reference_params(16, 1, 10), tmp_path / "wrn.pt")  # a checkpoint of the authors' layout
    blocks = [("".join(p for key, p in PRELUDES.items() if key in block), block) for block in BLOCKS]
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    out = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "blocks.json")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert out.stdout.count("BLOCK OK") == len(BLOCKS)
