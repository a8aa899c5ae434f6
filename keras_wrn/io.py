"""File writing every module shares: atomic writes, JSON, hashes.

A file is written to a temporary name in its own directory and renamed into
place, so a reader (or a resumed run) sees either the old file or the whole new
one, never a truncated one.  Temporary files are created with mode 0600 by
`tempfile.mkstemp`; before the rename they get the mode a plain ``open`` would
have given (0666 less the process umask), so results stay readable by the
user's group as any other file they write.
"""

import contextlib
import hashlib
import json
import os
import tempfile

__all__ = ["atomic_write", "write_json", "read_json", "sha256_file", "default_file_mode", "remove_temporaries",
           "TEMPORARY_PREFIX", "open_hdf5"]


def default_file_mode():
    """0666 less the process umask: the mode ``open(path, "w")`` creates files with."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# Temporary files of `atomic_write`; a process killed mid-write leaves one, `remove_temporaries` cleans up.
TEMPORARY_PREFIX = ".tmp-"


def remove_temporaries(directory):
    """Delete the temporaries a killed `atomic_write` left in ``directory``; returns their names."""
    if not os.path.isdir(directory):
        return []
    left = sorted(name for name in os.listdir(directory)
                  if name.startswith(TEMPORARY_PREFIX) and os.path.isfile(os.path.join(directory, name)))
    for name in left:
        os.remove(os.path.join(directory, name))
    return left


def atomic_write(path, write):
    """Call ``write(temporary_path)`` and rename the result onto ``path`` (same directory).

    The temporary keeps ``path``'s extension (``.weights.h5`` as a whole), since
    some writers (Keras' ``save_weights``, Matplotlib) choose the format from it.
    On any error the temporary file is removed and ``path`` is left untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    suffix = ".weights.h5" if path.endswith(".weights.h5") else os.path.splitext(path)[1]
    handle, temporary = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=suffix, dir=directory)
    os.close(handle)
    try:
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, default_file_mode())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_json(path, content):
    """``content`` as indented, key-sorted JSON at ``path``, atomically."""

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(content, stream, indent=2, sort_keys=True)

    atomic_write(path, write)


def read_json(path, what="file"):
    """The JSON content of ``path``; ``ValueError`` naming the file if it is not valid JSON."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: the {what} is not valid JSON ({error}).") from None


def sha256_file(path, chunk=1 << 20):
    """Hex sha256 of the file at ``path``, read in ``chunk``-byte blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def open_hdf5(path, what="an HDF5 file"):
    """Open the HDF5 file ``path`` read-only, refusing anything that reads outside it.

    A dataset with external storage, a virtual dataset or an external link
    makes h5py read bytes of *other* files (any file this process may read)
    as if they were the file's; Keras' own loader refuses them, and so does
    every reader of ours.

    Raises:
        ValueError: not an HDF5 file (``what`` says what was expected), or one
            that refers to other files (named).
    """
    import h5py  # deferred: listing releases and starting the command line need no HDF5

    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path}: not {what} (unreadable as HDF5: {error}).") from None
    with handle:
        outside = []

        def check_link(name):
            link = handle.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                outside.append(f"{name} (external link to {link.filename})")

        def check_object(name, item):
            if isinstance(item, h5py.Dataset) and (item.external or item.is_virtual):
                outside.append(f"{name} ({'external storage' if item.external else 'virtual dataset'})")

        handle.visit_links(check_link)
        if not outside:  # with no external link, visiting the objects stays inside the file
            handle.visititems(check_object)
        if outside:
            raise ValueError(f"{path}: refers to data in other files ({', '.join(outside[:3])}); refused, since "
                             "reading it would pull those files' bytes in.")
        yield handle
