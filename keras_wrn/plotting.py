"""Architecture diagrams with `keras.utils.plot_model` (pydot + Graphviz's ``dot``)."""

import os
import shutil

import keras

from keras_wrn.io import atomic_write

__all__ = ["plot_architecture", "GraphvizMissingError"]

PLOT_FORMATS = (".png", ".svg", ".pdf", ".dot")

INSTALL_GRAPHVIZ = (
    "Graphviz's `dot` program was not found on PATH; plotting needs it. Install it with "
    "`apt-get install graphviz` (Debian/Ubuntu), `dnf install graphviz` (Fedora), "
    "`brew install graphviz` (macOS) or `conda install graphviz`, then try again."
)


class GraphvizMissingError(RuntimeError):
    """Raised when pydot or Graphviz's ``dot`` is not installed."""


def plot_architecture(model, path, show_shapes=True, show_layer_names=True, dpi=72, rankdir="TB"):
    """Draw ``model`` to ``path`` (.png, .svg, .pdf or .dot) and return the path.

    The file is written to a temporary name beside ``path`` and renamed into
    place, so an interrupted plot never leaves a truncated file.

    Raises:
        ValueError: unsupported extension or a missing output directory.
        GraphvizMissingError: pydot or Graphviz is not installed (with how to install).
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in PLOT_FORMATS:
        raise ValueError(
            f"plot_architecture: path={path!r} has extension {extension!r}; expected one of {PLOT_FORMATS}."
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"plot_architecture: the directory of path={path!r} does not exist.")
    try:
        import pydot  # noqa: F401
    except ImportError as error:
        raise GraphvizMissingError("pydot is not installed: `pip install pydot`.") from error
    if shutil.which("dot") is None:
        raise GraphvizMissingError(INSTALL_GRAPHVIZ)

    atomic_write(path, lambda temporary: keras.utils.plot_model(
        model, to_file=temporary, show_shapes=show_shapes, show_layer_names=show_layer_names, rankdir=rankdir,
        dpi=dpi))
    return path
