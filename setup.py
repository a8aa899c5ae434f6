import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# The releases' manifest lives beside the files in weights/; the package ships a copy so that an
# installed keras_wrn knows every release (name, origin URL, sha256) without the repository.
MANIFEST = os.path.join("weights", "manifest.json")


class BuildWithManifest(build_py):
    def run(self):
        super().run()
        if not self.dry_run:
            shutil.copyfile(MANIFEST, os.path.join(self.build_lib, "keras_wrn", "manifest.json"))


setup(
    name="keras_wrn",
    version="0.1.0",
    description=(
        "Wide Residual Networks, pre-activation ResNets and Residual Networks of Residual "
        "Networks on Keras 3, exactly as in their papers."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_wrn", "keras_wrn.*"]),
    package_data={"keras_wrn": ["samples/README.md", "samples/cifar10-jpeg-sample/test/*/*.jpg"]},
    python_requires=">=3.10",
    install_requires=[
        "keras>=3.8",
        "tensorflow>=2.18",
        "numpy",
        "h5py",
        "pydot",
        "scipy",
        "scikit-learn",
        "matplotlib",
        "tensorboard",
    ],
    extras_require={
        # PyTorch only reads the original implementations' checkpoints (keras_wrn.convert) and builds the
        # tests' references. Tests pin the CPU build this project's machines carry (an open range would
        # pull a multi-GB CUDA build).
        "convert": ["torch>=2.1"],
        # scikit-image ships the LFW face/non-face subset, a target domain of the adapter comparison.
        "domains": ["scikit-image"],
        # benchmarks/: the PyTorch references and xprof, which reads TensorFlow's profiles.
        "bench": ["torch>=2.1", "xprof"],
        # JAX and PyTorch also serve as Keras backends in tests/test_backends.py.
        "test": ["pytest>=8", "pytest-xdist", "hypothesis", "torch==2.13.0", "scikit-image", "jax"],
    },
    cmdclass={"build_py": BuildWithManifest},
    entry_points={"console_scripts": ["keras-wrn=keras_wrn.cli:main"]},
)
