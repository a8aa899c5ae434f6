"""File writing every module shares: atomic writes, JSON, hashes.

A file is written to a temporary name in its own directory and renamed into
place, so a reader (or a resumed run) sees either the old file or the whole new
one, never a truncated one.  Temporary files are created with mode 0600 by
`tempfile.mkstemp`; before the rename they get the mode a plain ``open`` would
have given (0666 less the process umask), so results stay readable by the
user's group as any other file they write.
"""

import contextlib
import errno
import gc
import hashlib
import json
import os
import sys
import tempfile
import traceback

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; directories are then not locked
    fcntl = None

__all__ = ["atomic_write", "unused_path", "write_json", "read_json", "sha256_file", "default_file_mode",
           "remove_temporaries", "TEMPORARY_PREFIX", "open_hdf5",
           "LOCK_FILE", "locked_directory", "make_directory"]


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


# Held (flock) by the one process writing a directory; the kernel drops the lock when that process dies.
LOCK_FILE = ".keras-wrn.lock"


def make_directory(directory, option):
    """Create ``directory`` (and its parents); returns whether it was created.

    Raises:
        ValueError: naming ``option`` when ``directory`` or one of its parents is a file.
    """
    directory = os.path.abspath(os.fspath(directory))
    if os.path.isdir(directory):
        return False
    parent = directory
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        where = "is a file" if parent == directory else f"lies under the file {parent!r}"
        raise ValueError(f"{option} {directory!r} {where}; give a directory.")
    os.makedirs(directory, exist_ok=True)
    return True


@contextlib.contextmanager
def locked_directory(directory, option="--out"):
    """Create ``directory`` if need be and hold its `LOCK_FILE` exclusively for the ``with`` block.

    The lock is an advisory ``flock`` on a file inside the directory: a second
    process asking for it is refused at once, and a process killed by any signal
    (SIGKILL included) loses it with its file descriptors, so it never stays
    stuck (the file it leaves is taken over by the next process).  On leaving the
    block the lock file is removed, and so is the directory if this call created
    it and nothing else was written there.

    Raises:
        ValueError: naming ``option``: another process holds the lock, or the
            path is (or lies under) a file.
    """
    directory = os.path.abspath(os.fspath(directory))
    created = make_directory(directory, option)
    lock_path = os.path.join(directory, LOCK_FILE)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), default_file_mode())
    try:
        if not _lock(descriptor, lock_path):
            holder = os.pread(descriptor, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise ValueError(f"{option} {directory!r} is in use by another keras-wrn process (pid {holder}); "
                             f"wait for it to finish or choose another {option}.")
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield directory
        finally:
            os.remove(lock_path)  # still locked: whoever opens the path next gets a new file
            if created and not os.listdir(directory):
                os.rmdir(directory)
    finally:
        os.close(descriptor)


def _lock(descriptor, lock_path):
    """Take ``flock`` on ``descriptor`` without waiting; False if another process holds it, or removed
    the file between our ``open`` and our lock (the lock would then guard a file nobody else sees)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EACCES):
            return False
        raise
    try:
        return os.stat(lock_path, follow_symlinks=False).st_ino == os.fstat(descriptor).st_ino
    except FileNotFoundError:
        return False


def atomic_write(path, write, overwrite=True):
    """Call ``write(temporary_path)`` and rename the result onto ``path`` (same directory).

    The temporary keeps ``path``'s extension (``.weights.h5`` as a whole), since
    some writers (Keras' ``save_weights``, Matplotlib) choose the format from it.
    On any error the temporary file is removed and ``path`` is left untouched.
    ``overwrite=False`` publishes with a hard link, which fails rather than
    replace a file that appeared at ``path`` in the meantime (FileExistsError).
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
        if overwrite:
            os.replace(temporary, path)
        else:
            _publish_new(temporary, path)
    except OSError as error:
        _drop_failed_writer(error, temporary)
        raise
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _publish_new(temporary, path):
    """Give ``temporary``'s content the name ``path`` only if nothing has that name.

    A hard link claims the name atomically.  Where the file system has no hard
    links, the name is claimed with an exclusive create and the content renamed
    onto that claim.
    """
    try:
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, default_file_mode()))
            os.replace(temporary, path)
    except FileExistsError:
        raise FileExistsError(f"{path}: the file exists; nothing is overwritten, choose another path.") from None


def unused_path(path):
    """``path`` if nothing has that name, else the first free ``STEM-2.EXT``, ``STEM-3.EXT``, ..."""
    path = os.fspath(path)
    stem, extension = os.path.splitext(path)
    candidate, number = path, 1
    while os.path.lexists(candidate):
        number += 1
        candidate = f"{stem}-{number}{extension}"
    return candidate


def _drop_failed_writer(error, temporary):
    """Close what a writer that failed (disk full) left open, now rather than at interpreter exit.

    Keras' ``save_weights`` does not close its HDF5 file when a write fails: the
    file stays referenced from the traceback's frames, and HDF5 closing it at
    interpreter exit (another failing flush) crashed the process.  Emptying the
    temporary gives its last metadata flush room; clearing the finished frames
    then closes it here.  The flush errors its destructors may still report are
    expected and not shown.
    """
    with contextlib.suppress(OSError):
        os.truncate(temporary, 0)
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        traceback.clear_frames(error.__traceback__)
        gc.collect()
        h5py = sys.modules.get("h5py")
        if h5py is not None:  # a file whose close failed stays open inside HDF5
            for file_id in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
                if os.fsdecode(file_id.name) == temporary:
                    with contextlib.suppress(Exception):
                        file_id.close()
    finally:
        sys.unraisablehook = hook


def write_json(path, content, overwrite=True):
    """``content`` as indented, key-sorted JSON at ``path``, atomically (see `atomic_write`)."""

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(content, stream, indent=2, sort_keys=True)

    atomic_write(path, write, overwrite=overwrite)


def read_json(path, what="file", expect=None):
    """The JSON content of ``path``.

    Raises:
        ValueError: naming the file, if it is not UTF-8 JSON or (with ``expect``,
            e.g. ``dict``) its top level is not of that type.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as stream:
            content = json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: the {what} is not valid JSON ({error}).") from None
    if expect is not None and not isinstance(content, expect):
        raise ValueError(f"{path}: the {what} is JSON of type {type(content).__name__}; expected "
                         f"{expect.__name__ if isinstance(expect, type) else expect}.")
    return content


def sha256_file(path, chunk=1 << 20):
    """Hex sha256 of the file at ``path``, read in ``chunk``-byte blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def raised_by_hdf5(error):
    """True for an error of HDF5 itself: any ``OSError``, or one raised inside h5py (a corrupt file's symptom).

    h5py reports a damaged object header, heap or B-tree as ``KeyError``,
    ``RuntimeError``, ``SystemError``, ``TypeError`` or ``ValueError``, depending
    on which object the damage is found in; our own errors are raised outside h5py.
    """
    if isinstance(error, OSError):
        return True
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    if traceback is None:
        return False
    parts = traceback.tb_frame.f_code.co_filename.replace("\\", "/").split("/")
    return "h5py" in parts or traceback.tb_frame.f_globals.get("__name__", "").split(".")[0] == "h5py"


def hdf5_file_error(path, what, error):
    """The ``ValueError`` for a file HDF5 cannot read: empty, not HDF5 at all, or corrupt / truncated."""
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        return ValueError(f"{path}: empty file (0 bytes), not {what}; it was cut off while being written or "
                          "copied: restore it or write it again.")
    if "file signature not found" in detail:
        return ValueError(f"{path}: not {what} (not an HDF5 file: {detail}).")
    return ValueError(f"{path}: corrupt or truncated HDF5 file ({type(error).__name__}: {detail}); it cannot be "
                      f"read as {what}: restore it, download it again or write it again.")


@contextlib.contextmanager
def open_hdf5(path, what="an HDF5 file"):
    """Open the HDF5 file ``path`` read-only, refusing anything that reads outside it or is damaged.

    A dataset with external storage, a virtual dataset or an external link
    makes h5py read bytes of *other* files (any file this process may read)
    as if they were the file's; Keras' own loader refuses them, and so does
    every reader of ours.  Every object header is visited before the handle
    is given out, and HDF5 errors raised while the caller reads inside the
    ``with`` block (a damaged header, heap or chunk) become the same
    ``ValueError``, so a corrupt or truncated file gives one message naming it.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: an empty file, not an HDF5 file (``what`` says what was
            expected), a corrupt or truncated one, or one that refers to other
            files (named).
    """
    import h5py  # deferred: listing releases and starting the command line need no HDF5

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file (expected {what}).")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: not a file (expected {what}).")
    try:
        handle = h5py.File(path, "r")
    except Exception as error:  # h5py reports every unreadable file as OSError; a damaged superblock otherwise
        if not raised_by_hdf5(error):
            raise
        raise hdf5_file_error(path, what, error) from None
    with handle:
        try:
            outside = _outside_references(handle)
            if outside:
                raise ValueError(f"{path}: refers to data in other files ({', '.join(outside[:3])}); refused, "
                                 "since reading it would pull those files' bytes in.")
            yield handle
        except Exception as error:
            if not raised_by_hdf5(error):
                raise
            raise hdf5_file_error(path, what, error) from None


def _outside_references(handle):
    """Descriptions of the external links, external storage and virtual datasets in the open file ``handle``."""
    import h5py

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
    return outside
