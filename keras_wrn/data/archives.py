"""Archive extraction that never writes outside its target directory."""

import os
import tarfile
import zipfile

__all__ = ["extract_archive"]


def extract_archive(archive, target):
    """Extract a .tar(.gz) or .zip ``archive`` into ``target`` and return ``target``.

    Tar members go through Python's ``"data"`` filter (no absolute paths, no
    ``..``, no links out of the tree, no device files); zip members are checked
    the same way by hand.  A bad member raises ``ValueError`` naming it.
    """
    archive, target = os.fspath(archive), os.fspath(target)
    if not os.path.isfile(archive):
        raise ValueError(f"extract_archive: archive={archive!r} does not exist.")
    os.makedirs(target, exist_ok=True)
    root = os.path.realpath(target)
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            try:
                tar.extractall(target, filter="data")
            except tarfile.FilterError as error:
                raise ValueError(f"extract_archive: {archive}: unsafe member refused ({error}).") from None
        return target
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                destination = os.path.realpath(os.path.join(root, member))
                if os.path.isabs(member) or os.path.commonpath([root, destination]) != root:
                    raise ValueError(f"extract_archive: {archive}: unsafe member {member!r} refused.")
            zipped.extractall(target)
        return target
    raise ValueError(f"extract_archive: {archive!r} is neither a tar nor a zip archive.")
