"""Archive extraction that writes only regular files and directories inside its target directory."""

import collections
import gzip
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib

__all__ = ["extract_archive"]

# One archive member: its name, "file", "dir" or why it is refused, its permission bits, its
# modification time (None: leave the file's) and a callable opening its content.
_Member = collections.namedtuple("_Member", "name kind mode mtime open")
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
_DRIVE = re.compile(r"^[A-Za-z]:")
_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError, RuntimeError)


def extract_archive(archive, target):
    """Extract a .tar(.gz) or .zip ``archive`` into ``target`` and return ``target``.

    Only regular files and directories with relative names are extracted, and every member is
    checked before anything is written, so a refused archive leaves nothing behind.  Refused, with
    a ``ValueError`` naming the archive and the member:

    - symbolic and hard links, in tar and zip alike: a chain of links can resolve out of the
      target where no check of their names can tell (CVE-2025-4517), and datasets never need them;
    - device, fifo and other special members;
    - absolute names, drive letters, ``..`` components, backslashes and NUL characters;
    - a member named twice, or a file that another member needs as a directory;
    - a member whose path in ``target`` is already a link or of another kind (a directory where a
      file goes, a file where a directory goes): existing links are never followed.

    Directories are created one component at a time and files with ``O_CREAT | O_EXCL |
    O_NOFOLLOW`` (an existing regular file is replaced, never written through).
    """
    archive, target = os.fspath(archive), os.fspath(target)
    if not os.path.isfile(archive):
        raise ValueError(f"extract_archive: archive={archive!r} does not exist.")
    if tarfile.is_tarfile(archive):
        opener, members, kind = tarfile.open, _tar_members, "tar"
    elif zipfile.is_zipfile(archive):
        opener, members, kind = zipfile.ZipFile, _zip_members, "zip"
    else:
        raise ValueError(f"extract_archive: {archive!r} is neither a tar nor a zip archive.")
    if os.path.lexists(target) and not os.path.isdir(target):
        raise ValueError(f"extract_archive: target={target!r} exists and is not a directory.")
    try:
        with opener(archive) as handle:
            listed = members(handle)
            plan = _checked_plan(archive, listed, target)
            os.makedirs(target, exist_ok=True)
            root = os.path.realpath(target)
            for member, parts in plan:
                _extract_member(archive, member, root, parts)
    except _READ_ERRORS as error:
        raise ValueError(f"extract_archive: {archive}: cannot be read as a {kind} archive ({error}).") from None
    return target


def _tar_members(tar):
    """The tar's members; links, devices and fifos carry the reason they are refused."""
    return [
        _Member(info.name, _tar_kind(info), info.mode, info.mtime, lambda info=info: tar.extractfile(info))
        for info in tar.getmembers()
    ]


def _tar_kind(info):
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return f"a symbolic link (to {_shown(info.linkname)})"
    if info.islnk():
        return f"a hard link (to {_shown(info.linkname)})"
    if info.ischr() or info.isblk():
        return "a device"
    if info.isfifo():
        return "a fifo"
    return f"a special member (tar type {info.type!r})"


def _zip_members(zipped):
    """The zip's members; the file type in the high 16 bits of ``external_attr`` (where Unix zips
    record symbolic links, which `zipfile` would write as plain files) decides their kind."""
    return [
        _Member(info.filename, _zip_kind(info), (info.external_attr >> 16) & 0o777, None,
                lambda info=info: zipped.open(info))
        for info in zipped.infolist()
    ]


def _zip_kind(info):
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        return "a symbolic link"
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"a special member (file type {file_type:#o})"
    if info.is_dir():
        return "dir"
    if file_type == stat.S_IFDIR:
        return "a directory entry without a trailing '/'"
    return "file"


def _name_parts(name):
    """``name``'s components, or why the name is refused: it must be relative, without ``..``
    and without characters that are separators or terminators elsewhere (backslash, NUL)."""
    if "\x00" in name:
        return "has a NUL character"
    if "\\" in name:
        return "has a backslash (a separator on Windows)"
    if name.startswith("/") or os.path.isabs(name) or _DRIVE.match(name):
        return "is an absolute name"
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        return "has a '..' component"
    return parts


def _checked_plan(archive, members, target):
    """``[(member, parts)]`` to extract, in the archive's order, once every member is found safe;
    otherwise one ``ValueError`` naming the first unsafe member and how many there are."""
    plan, refused, kinds = [], [], {}
    existing = _ExistingTree(target)
    for member in members:
        parts = _name_parts(member.name)
        reason = parts if isinstance(parts, str) else _member_problem(member, parts, kinds, existing)
        if reason:
            refused.append((member.name, reason))
        elif parts:
            plan.append((member, parts))
    refused.extend(_files_used_as_directories(kinds))
    if refused:
        name, reason = refused[0]
        raise ValueError(
            f"extract_archive: {archive}: unsafe member refused, nothing was extracted. The unsafe member "
            f"{_shown(name)} {reason} ({len(refused)} of {len(members)} members refused); only regular files and "
            f"directories with relative names inside the target are extracted."
        )
    return plan


def _shown(name, limit=120):
    """``repr(name)``, its middle elided when longer than ``limit`` (link chains run to kilobytes)."""
    text = repr(name)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]}"


def _member_problem(member, parts, kinds, existing):
    """Why a member with a valid name is refused (its kind, a repeated name, what ``target``
    already holds on its path), or None."""
    if member.kind not in ("file", "dir"):
        return f"is {member.kind}"
    if not parts:
        return None if member.kind == "dir" else "names the target itself"
    key = tuple(parts)
    if key in kinds and (member.kind == "file" or kinds[key] == "file"):
        return "is named twice in the archive"
    kinds[key] = member.kind
    return existing.problem(parts, member.kind)


def _files_used_as_directories(kinds):
    directories = {key[:end] for key in kinds for end in range(1, len(key))}
    return [("/".join(key), "is a file that other members need as a directory")
            for key, kind in kinds.items() if kind == "file" and key in directories]


class _ExistingTree:
    """What ``target`` already holds, looked up once per path: every directory on a member's path
    must be a real directory (not a link) or absent, and the member's own path absent or of its kind."""

    def __init__(self, target):
        self.root = os.path.realpath(target) if os.path.exists(target) else None
        self.modes = {}

    def problem(self, parts, kind):
        if self.root is None:
            return None
        for end in range(1, len(parts) + 1):
            mode = self._mode(parts[:end])
            if mode is None:
                return None
            last = end == len(parts)
            if stat.S_ISLNK(mode):
                return f"would be written through {'/'.join(parts[:end])!r}, a link already in the target"
            wanted = stat.S_ISREG if last and kind == "file" else stat.S_ISDIR
            if not wanted(mode):
                return f"would replace {'/'.join(parts[:end])!r}, which the target already holds as another kind"
        return None

    def _mode(self, parts):
        key = tuple(parts)
        if key not in self.modes:
            try:
                self.modes[key] = os.lstat(os.path.join(self.root, *parts)).st_mode
            except (FileNotFoundError, NotADirectoryError):
                self.modes[key] = None
        return self.modes[key]


def _extract_member(archive, member, root, parts):
    directory = _make_directories(archive, member, root, parts if member.kind == "dir" else parts[:-1])
    if member.kind == "file":
        _write_file(archive, member, os.path.join(directory, parts[-1]))


def _make_directories(archive, member, root, parts):
    """Create ``parts`` under ``root`` one component at a time; an existing component must be a
    directory and not a link (checked with ``lstat``, so no link is followed)."""
    path = root
    for part in parts:
        path = os.path.join(path, part)
        try:
            os.mkdir(path)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                raise ValueError(
                    f"extract_archive: {archive}: unsafe member refused: {member.name!r} would be written "
                    f"through {path}, which is not a directory (links are never followed)."
                ) from None
    return path


def _write_file(archive, member, path):
    """Write a member's content to a new file at ``path``: an existing regular file is removed
    first; anything else there (a link, a directory) is refused, never followed."""
    mode = 0o777 if member.mode and member.mode & 0o100 else 0o666
    try:
        descriptor = os.open(path, _CREATE, mode)
    except FileExistsError:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise ValueError(
                f"extract_archive: {archive}: unsafe member refused: {member.name!r} would replace {path}, "
                f"which is not a regular file (links are never followed)."
            ) from None
        os.unlink(path)
        descriptor = os.open(path, _CREATE, mode)
    with os.fdopen(descriptor, "wb") as output, member.open() as source:
        shutil.copyfileobj(source, output)
        _keep_mtime(output.fileno(), member.mtime)


def _keep_mtime(descriptor, mtime):
    """Give the file the member's modification time where the archive records a usable one."""
    if mtime is None or os.utime not in os.supports_fd:
        return
    try:
        os.utime(descriptor, (mtime, mtime))
    except (OSError, OverflowError, ValueError):
        pass
