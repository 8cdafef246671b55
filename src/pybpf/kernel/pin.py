"""A bpffs-like directory: where objects live, how they are pinned, and how ids stay global.

The kernel keeps maps and programs in kernel memory and lets bpffs (``/sys/fs/bpf``) name them, so
that an object outlives the process that created it and another process can open the same object.
pybpf emulates that with an ordinary directory (the *root*):

``<root>/.pybpf/obj/map-<id>``, ``prog-<id>``
    the storage file of every live object (a map's native memory, a program's instructions and
    metadata). Every fd pybpf hands out is an fd of one of these files, so fd numbers are the
    process's real lowest free numbers, as the kernel's are.
``<root>/<anything>``
    a pin: a hard link to a storage file (``OBJ_PIN``). ``OBJ_GET`` opens the file a pin names, so
    two processes share the same inode — for a map, the same memory. ``rm`` unpins, as on bpffs.
``<root>/.pybpf/ref/<holder>.<slot>``
    a hard link standing for a reference one object holds on another (a program on the maps it uses,
    an outer map on an inner map, a program array on its programs).
``<root>/.pybpf/ids``
    the id counters (maps, programs, links, BTF), incremented under ``flock``: ids are global to
    everything sharing the root, and increasing, as the kernel's idr hands them out.

Liveness is the kernel's refcount turned into file-system facts: an object is alive while it has a
link besides its ``obj/`` name (a pin or a reference) or while some process has it mapped — every
process holds a shared ``flock`` on each object it has open. :meth:`BpfFs.collect` removes objects
that have neither (and then the references they held), so ids of dead objects disappear from
``GET_NEXT_ID`` as they do in the kernel.

The root defaults to ``$PYBPF_BPFFS``, else ``$XDG_STATE_HOME/pybpf/bpffs``, else
``~/.local/state/pybpf/bpffs``. A path under ``/sys/fs/bpf/`` given to pybpf names the same
relative path under the root (so bpftool-style command lines work unchanged) unless the root is
``/sys/fs/bpf`` itself.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from pybpf.errors import BpfError

__all__ = ["KIND_BTF", "KIND_LINK", "KIND_MAP", "KIND_PROG", "BpfFs", "PinPath", "default_root"]

KIND_MAP = "map"
KIND_PROG = "prog"
KIND_LINK = "link"
KIND_BTF = "btf"
_KINDS = (KIND_MAP, KIND_PROG, KIND_LINK, KIND_BTF)
_SYS_BPFFS = "/sys/fs/bpf"
PinPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]
"""A pin path as the public API takes it (``pathlib.Path`` included)."""
_ID_MAX = 0x7FFFFFFF


def default_root() -> Path:
    """Where pinned objects live unless told otherwise (see the module docstring)."""
    env = os.environ.get("PYBPF_BPFFS")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME")
    base = Path(state) if state else Path.home() / ".local" / "state"
    return base / "pybpf" / "bpffs"


class BpfFs:
    """One bpffs-like root directory (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.meta = self.root / ".pybpf"
        self.objdir = self.meta / "obj"
        self.refdir = self.meta / "ref"
        try:
            self.objdir.mkdir(parents=True, exist_ok=True)
            self.refdir.mkdir(parents=True, exist_ok=True)
            ids = self.meta / "ids"
            if not ids.exists():
                fd = os.open(ids, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    with _flocked(fd):
                        if os.fstat(fd).st_size < 16:
                            os.pwrite(fd, bytes(16), 0)
                finally:
                    os.close(fd)
        except OSError as e:
            raise BpfError(e.errno or errno.EPERM, f"cannot use bpffs directory {self.root}: {e.strerror}") from None
        self.root = self.root.resolve()
        self.meta = self.root / ".pybpf"
        self.objdir = self.meta / "obj"
        self.refdir = self.meta / "ref"

    # -- ids --------------------------------------------------------------------------
    def alloc_id(self, kind: str) -> int:
        """The next id for ``kind`` (1, 2, 3, ... shared by every process using this root)."""
        slot = _KINDS.index(kind) * 4
        fd = os.open(self.meta / "ids", os.O_RDWR)
        try:
            with _flocked(fd):
                raw = os.pread(fd, 4, slot).ljust(4, b"\0")
                last = struct.unpack("<I", raw)[0]
                nxt = last + 1 if last < _ID_MAX else 1
                os.pwrite(fd, struct.pack("<I", nxt), slot)
                return nxt
        finally:
            os.close(fd)

    # -- object files -----------------------------------------------------------------
    def object_path(self, kind: str, obj_id: int) -> Path:
        return self.objdir / f"{kind}-{obj_id}"

    def create_object(self, kind: str, obj_id: int, size: int) -> tuple[int, Path]:
        """Create the storage file of a new object: returns an O_RDWR fd (with a shared flock
        already held through it) and the file's path. The file appears under its final name only
        once locked, so a concurrent :meth:`collect` never sees it unlocked."""
        tmp = self.objdir / f".new-{kind}-{obj_id}-{os.getpid()}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, size)
            fcntl.flock(fd, fcntl.LOCK_SH)
            final = self.object_path(kind, obj_id)
            os.rename(tmp, final)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return fd, final

    def live_ids(self, kind: str) -> list[int]:
        """Ids of objects of ``kind`` whose storage exists (after collecting dead ones), sorted."""
        self.collect()
        out = []
        prefix = f"{kind}-"
        with os.scandir(self.objdir) as it:
            for entry in it:
                if entry.name.startswith(prefix):
                    with contextlib.suppress(ValueError):
                        out.append(int(entry.name[len(prefix):]))
        return sorted(out)

    # -- references between objects -----------------------------------------------------
    def add_ref(self, holder: str, slot: str, target: Path) -> None:
        """Record that ``holder`` (e.g. ``"prog-7"``) references the object at ``target`` through
        ``slot`` (replacing any previous reference in that slot)."""
        name = self.refdir / f"{holder}.{slot}"
        tmp = self.refdir / f".tmp-{holder}.{slot}-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.link(target, tmp)
        os.replace(tmp, name)

    def drop_ref(self, holder: str, slot: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.refdir / f"{holder}.{slot}")

    def drop_refs(self, holder: str) -> None:
        prefix = f"{holder}."
        with os.scandir(self.refdir) as it:
            for entry in it:
                if entry.name.startswith(prefix):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)

    # -- garbage collection -------------------------------------------------------------
    def collect(self) -> int:
        """Remove objects nobody references or has open; returns how many were removed.

        An object file with a single link (its ``obj/`` name) that no process holds a shared flock
        on is dead: remove it and the references it held, then look again (freeing a program may
        free its maps).
        """
        removed = 0
        changed = True
        while changed:
            changed = False
            with os.scandir(self.objdir) as it:
                entries = [e for e in it if not e.name.startswith(".")]
            for entry in entries:
                try:
                    st = os.stat(entry.path)
                except FileNotFoundError:
                    continue
                if st.st_nlink > 1:
                    continue
                try:
                    fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                try:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue
                    if os.fstat(fd).st_nlink > 1:
                        continue
                    os.unlink(entry.path)
                    self.drop_refs(entry.name)
                    removed += 1
                    changed = True
                finally:
                    os.close(fd)
        return removed

    # -- pinning ------------------------------------------------------------------------
    def translate(self, pathname: PinPath, dir_fd: int | None = None) -> Path:
        """The file-system path a user's pin path names (``/sys/fs/bpf/x`` → ``<root>/x``);
        ``pathname`` may be ``str``, ``bytes`` or ``os.PathLike``."""
        pathname = os.fsdecode(os.fspath(pathname))
        if pathname.startswith(_SYS_BPFFS + "/") or pathname == _SYS_BPFFS:
            if str(self.root) != _SYS_BPFFS:
                rest = pathname[len(_SYS_BPFFS):].lstrip("/")
                return self.root / rest
            return Path(pathname)
        if not os.path.isabs(pathname) and dir_fd is not None:
            base = os.readlink(f"/proc/self/fd/{dir_fd}")
            return Path(base) / pathname
        return Path(os.path.abspath(pathname))

    def is_inside(self, path: Path) -> bool:
        """Whether ``path`` lies under the root (but not in its private ``.pybpf`` area)."""
        try:
            rel = path.resolve().relative_to(self.root)
        except ValueError:
            return False
        return not (rel.parts and rel.parts[0] == ".pybpf")

    def pin(self, storage: Path, pathname: PinPath, dir_fd: int | None = None) -> Path:
        """``OBJ_PIN``: link ``storage`` at ``pathname``, with the kernel's errnos (ENOENT for a
        missing parent, EPERM outside a bpffs, EEXIST for an existing name)."""
        dest = self.translate(pathname, dir_fd)
        parent = dest.parent
        if not parent.is_dir():
            raise BpfError(errno.ENOENT if not parent.exists() else errno.ENOTDIR)
        if not self.is_inside(parent / "x"):
            raise BpfError(errno.EPERM, f"{pathname}: not in a bpffs ({self.root})")
        if dest.exists() or dest.is_symlink():
            raise BpfError(errno.EEXIST)
        try:
            os.link(storage, dest)
        except FileExistsError:
            raise BpfError(errno.EEXIST) from None
        except OSError as e:
            raise BpfError(e.errno or errno.EPERM) from None
        return dest

    def resolve_pin(self, pathname: PinPath, dir_fd: int | None = None) -> Path:
        """``OBJ_GET``: the existing file a pin path names (ENOENT if none)."""
        path = self.translate(pathname, dir_fd)
        if not path.exists():
            raise BpfError(errno.ENOENT)
        return path

    def iter_pins(self) -> Iterator[tuple[Path, os.stat_result]]:
        """Every pinned file under the root, with its stat (for ``pinned`` listings)."""
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.root and ".pybpf" in dirnames:
                dirnames.remove(".pybpf")
            for name in filenames:
                p = Path(dirpath) / name
                with contextlib.suppress(OSError):
                    yield p, os.stat(p)


@contextlib.contextmanager
def _flocked(fd: int) -> Iterator[None]:
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
