"""Build the bundled offline sample: the first 100 test JPEGs of each class of cifar10-jpeg.

    python scripts/make_sample.py [--archive ../shared/data/cifar10-jpeg.tar.gz]

Copies the files byte for byte (no re-encoding) into
keras_wrn/samples/cifar10-jpeg-sample/test/<class>/NNNN.jpg.
"""

import argparse
import os
import shutil
import tempfile

from keras_wrn.data import extract_archive

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ARCHIVE = os.path.join(ROOT, "..", "shared", "data", "cifar10-jpeg.tar.gz")
SAMPLE = os.path.join(ROOT, "keras_wrn", "samples", "cifar10-jpeg-sample", "test")
PER_CLASS = 100

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--archive", default=DEFAULT_ARCHIVE)
args = parser.parse_args()

with tempfile.TemporaryDirectory() as scratch:
    extract_archive(args.archive, scratch)
    top = next(os.path.join(scratch, d) for d in os.listdir(scratch) if os.path.isdir(os.path.join(scratch, d)))
    test = os.path.join(top, "test") if os.path.isdir(os.path.join(top, "test")) else os.path.join(scratch, "test")
    if os.path.isdir(SAMPLE):
        shutil.rmtree(SAMPLE)
    for name in sorted(os.listdir(test)):
        os.makedirs(os.path.join(SAMPLE, name))
        for file in sorted(os.listdir(os.path.join(test, name)))[:PER_CLASS]:
            shutil.copyfile(os.path.join(test, name, file), os.path.join(SAMPLE, name, file))
print(f"wrote {SAMPLE}")
