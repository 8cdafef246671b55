"""The object model behind bpf(2): fds, ids, object lifetimes, and the typed operations.

:class:`Kernel` is "a kernel in userspace": it owns the fd table of this process's bpf objects,
creates maps and programs in a :class:`~pybpf.kernel.pin.BpfFs` root, finds objects by fd, id or
pin path, and implements each command's semantics on decoded arguments (bytes and ints), raising
:class:`~pybpf.errors.BpfError` with the errno Linux uses. :mod:`pybpf.kernel.syscall` decodes
``union bpf_attr`` and calls these methods; the Pythonic API (``pybpf.Map``, ``pybpf.Collection``)
calls them directly.

fds are real: each is an ``open()`` of the object's storage file, so numbers are the process's
lowest free ones and an fd inherited or opened by path (``open("/sys/fs/bpf/x")``) is recognised
too — an fd is resolved by ``fstat`` to the storage inode, then to the live object. The access
mode (``O_RDONLY`` / ``O_WRONLY`` / ``O_RDWR``) is the fd's own, which is what the kernel checks
(``map_get_sys_perms``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pybpf import uapi
from pybpf.errors import ENOTSUPP, BpfError
from pybpf.kernel import native
from pybpf.kernel.maps import map_class
from pybpf.kernel.maps.base import (
    F_RDONLY,
    F_WRONLY,
    HEADER_SIZE,
    NO_SPIN_LOCK,
    NUMA_NO_NODE,
    Header,
    Map,
    MapAttrs,
)
from pybpf.kernel.pin import KIND_MAP, KIND_PROG, BpfFs, PinPath
from pybpf.kernel.program import Program, ProgramImage
from pybpf.uapi import MapType

__all__ = ["Kernel", "check_obj_name", "default_kernel", "file_flags_for", "possible_cpus", "set_default_kernel"]

O_ACCMODE = os.O_ACCMODE if hasattr(os, "O_ACCMODE") else 3


_FD_MAX = 0x7FFFFFFF  # fds are C ints


def possible_cpus() -> int:
    """``num_possible_cpus()`` as libbpf reads it (``/sys/devices/system/cpu/possible``)."""
    try:
        text = Path("/sys/devices/system/cpu/possible").read_text().strip()
        n = 0
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            n += (int(hi) - int(lo) + 1) if hi else 1
        return max(n, 1)
    except (OSError, ValueError):
        return os.cpu_count() or 1


def file_flags_for(flags: int) -> int:
    """``bpf_get_file_flag``: BPF_F_RDONLY/WRONLY → the fd's open mode; EINVAL for both."""
    if flags & F_RDONLY and flags & F_WRONLY:
        raise BpfError(errno.EINVAL)
    if flags & F_RDONLY:
        return os.O_RDONLY
    if flags & F_WRONLY:
        return os.O_WRONLY
    return os.O_RDWR


def check_obj_name(raw: bytes) -> str:
    """``bpf_obj_name_cpy``: [A-Za-z0-9_.]*, NUL-terminated within 16 bytes, else EINVAL."""
    end = raw.find(b"\0")
    if end < 0:
        raise BpfError(errno.EINVAL, "object name is not NUL-terminated")
    name = raw[:end]
    for c in name:
        ch = chr(c)
        if not (ch.isascii() and (ch.isalnum() or ch in "_.")):
            raise BpfError(errno.EINVAL, f"invalid character {ch!r} in object name")
    return name.decode("ascii")


def _nr_node_ids() -> int:
    try:
        text = Path("/sys/devices/system/node/possible").read_text().strip()
        return int(text.split("-")[-1]) + 1
    except (OSError, ValueError):
        return 1


class Kernel:
    """One userspace bpf(2) instance: fd table, object cache, bpffs root, "CPUs", trace pipe.

    ``bpffs`` is the root directory (default :func:`pybpf.kernel.pin.default_root`); ``ncpus`` the
    number of possible CPUs for per-CPU maps (default: this machine's); ``stats`` turns on run-time
    statistics (default: ``$PYBPF_BPF_STATS``). Objects are shared with
    every process using the same root.
    """

    def __init__(self, bpffs: str | os.PathLike[str] | None = None, *, ncpus: int | None = None,
                 stats: bool | None = None) -> None:
        self.fs = BpfFs(bpffs)
        self.stats_enabled = stats if stats is not None else os.environ.get("PYBPF_BPF_STATS", "") not in ("", "0")
        """Account run time and count per program (Linux: ``kernel.bpf_stats_enabled``, off by default;
        here ``PYBPF_BPF_STATS=1`` or ``Kernel(stats=True)``)."""
        self.ncpus = ncpus if ncpus is not None else possible_cpus()
        if self.ncpus < 1:
            raise ValueError("ncpus must be >= 1")
        self.cpu = 0
        """The CPU programs run on (``bpf_get_smp_processor_id``, per-CPU map copies)."""
        self._fds: dict[int, tuple[tuple[int, int], Map | Program]] = {}
        self._cache: weakref.WeakValueDictionary[tuple[int, int], Map | Program] = weakref.WeakValueDictionary()
        self._by_id: dict[tuple[str, int], weakref.ReferenceType[Map | Program]] = {}
        self._lock = threading.RLock()
        self.prog_types: dict[str, Any] = {}
        """Application-defined program types by name (see :mod:`pybpf.kernel.custom`)."""
        self._trace: Any = None
        self._btf_ids: dict[int, tuple[Any, int]] = {}

    @property
    def root(self) -> Path:
        """The bpffs-like directory this kernel keeps its objects and pins in."""
        return self.fs.root

    # -- fds --------------------------------------------------------------------------------
    def _new_fd(self, obj: Map | Program, mode: int) -> int:
        """Open the object's storage file (lowest free fd) and remember it."""
        try:
            fd = os.open(obj.path, mode | os.O_CLOEXEC)
        except OSError as e:
            raise BpfError(e.errno or errno.EMFILE) from None
        st = os.fstat(fd)
        with self._lock:
            self._fds[fd] = ((st.st_dev, st.st_ino), obj)
        return fd

    def close(self, fd: int) -> None:
        """Close a bpf object fd (``close(2)``): the object lives on while referenced."""
        if not 0 <= fd <= _FD_MAX:
            raise BpfError(errno.EBADF)
        with self._lock:
            self._fds.pop(fd, None)
        try:
            os.close(fd)
        except OSError as e:
            raise BpfError(e.errno or errno.EBADF) from None

    def dup(self, fd: int) -> int:
        """``dup(2)`` of a bpf object fd, remembered like any other."""
        obj = self._resolve_fd(fd)
        newfd = os.dup(fd)
        st = os.fstat(newfd)
        with self._lock:
            self._fds[newfd] = ((st.st_dev, st.st_ino), obj)
        return newfd

    def _resolve_fd(self, fd: int) -> Map | Program:
        """The object behind ``fd``: EBADF for a closed fd, EINVAL for a non-bpf file."""
        if not 0 <= fd <= _FD_MAX:  # fdget() of an fd beyond any fd table
            raise BpfError(errno.EBADF)
        try:
            st = os.fstat(fd)
        except OSError:
            raise BpfError(errno.EBADF) from None
        key = (st.st_dev, st.st_ino)
        entry = self._fds.get(fd)
        if entry is not None and entry[0] == key:
            return entry[1]
        obj = self._cache.get(key)
        if obj is None:
            obj = self._instantiate_fd(fd, key)
            if obj is None:
                raise BpfError(errno.EINVAL)
        with self._lock:
            self._fds[fd] = (key, obj)
        return obj

    def fd_mode(self, fd: int) -> int:
        """The fd's access mode (O_RDONLY / O_WRONLY / O_RDWR): what ``BPF_F_RDONLY`` / ``WRONLY`` opens give."""
        if not 0 <= fd <= _FD_MAX:
            raise BpfError(errno.EBADF)
        try:
            return fcntl.fcntl(fd, fcntl.F_GETFL) & O_ACCMODE
        except OSError:
            raise BpfError(errno.EBADF) from None

    def get_map(self, fd: int) -> Map:
        """``__bpf_map_get``: the map behind ``fd`` (EBADF / EINVAL otherwise)."""
        obj = self._resolve_fd(fd)
        if not isinstance(obj, Map):
            raise BpfError(errno.EINVAL)
        return obj

    def get_prog(self, fd: int) -> Program:
        """``bpf_prog_get``: the program behind ``fd`` (EBADF / EINVAL otherwise)."""
        obj = self._resolve_fd(fd)
        if not isinstance(obj, Program):
            raise BpfError(errno.EINVAL)
        return obj

    def map_perms(self, fd: int, m: Map) -> tuple[bool, bool]:
        """``map_get_sys_perms``: (can read, can write) through ``fd``; frozen maps are not writable."""
        mode = self.fd_mode(fd)
        can_read = mode in (os.O_RDONLY, os.O_RDWR)
        can_write = mode in (os.O_WRONLY, os.O_RDWR) and not m.frozen
        return can_read, can_write

    def fds(self) -> dict[int, Map | Program]:
        """This process's open bpf fds (for ``bpftool``-style ``pids`` listings and tests)."""
        return {fd: obj for fd, (_k, obj) in self._fds.items()}

    # -- instantiation --------------------------------------------------------------------------
    def _instantiate_fd(self, fd: int, key: tuple[int, int]) -> Map | Program | None:
        try:
            head = os.pread(fd, HEADER_SIZE, 0)
        except OSError:
            return None
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        return self._instantiate(path, head, key)

    def _instantiate(self, path: Path, head: bytes, key: tuple[int, int]) -> Map | Program | None:
        if len(head) < 8 or head[:4] != b"PBPF":
            return None
        kind = head[6]
        with self._lock:
            obj = self._cache.get(key)
            if obj is not None:
                return obj
            # map a fresh, read-write open file description: the mapping keeps it (and its shared
            # flock, which tells other processes the object is in use) alive after we close it
            try:
                rw = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                return None
            try:
                fcntl.flock(rw, fcntl.LOCK_SH)
                size = os.fstat(rw).st_size
                mapping = native.Mapping(rw, size)
            except OSError:
                return None
            finally:
                os.close(rw)
            canonical = path
            if kind == 1:
                obj = self._map_from_mapping(mapping, canonical)
            elif kind == 2:
                obj = self._prog_from_mapping(mapping, canonical)
            else:
                return None
            if obj is None:
                return None
            obj.path = self.fs.object_path(obj.kind, obj.id)
            if not obj.path.exists():
                obj.path = canonical
            self._cache[key] = obj
            self._by_id[(obj.kind, obj.id)] = weakref.ref(obj)
            return obj

    def _map_from_mapping(self, mapping: native.Mapping, path: Path) -> Map | None:
        try:
            header = Header.unpack(mapping.view[:HEADER_SIZE])
            cls = map_class(header.map_type)
        except (ValueError, KeyError):
            return None
        return cls(self, mapping, header, path)

    def _prog_from_mapping(self, mapping: native.Mapping, path: Path) -> Program | None:
        try:
            prog_id, image = ProgramImage.deserialize(mapping.view)
        except (ValueError, KeyError, UnicodeDecodeError):
            return None
        used: dict[int, Map] = {}
        for mid in image.used_map_ids:
            m = self.map_by_id(mid)
            if m is None:
                return None
            used[mid] = m
        return Program(self, prog_id, image, used, mapping, path)

    def _object_by_id(self, kind: str, obj_id: int) -> Map | Program | None:
        ref = self._by_id.get((kind, obj_id))
        obj = ref() if ref is not None else None
        if obj is not None:
            return obj
        path = self.fs.object_path(kind, obj_id)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            cached = self._cache.get(key)
            if cached is not None:
                return cached
            if st.st_nlink <= 1 and not _in_use(fd):
                return None  # dead: nobody references or holds it (collect() will remove it)
            head = os.pread(fd, HEADER_SIZE, 0)
        finally:
            os.close(fd)
        return self._instantiate(path, head, key)

    def map_by_id(self, map_id: int) -> Map | None:
        """The live map with this id (any process's), or None."""
        obj = self._object_by_id(KIND_MAP, map_id)
        return obj if isinstance(obj, Map) else None

    def prog_by_id(self, prog_id: int) -> Program | None:
        """The live program with this id (any process's), or None."""
        obj = self._object_by_id(KIND_PROG, prog_id)
        return obj if isinstance(obj, Program) else None

    # -- MAP_CREATE ----------------------------------------------------------------------------
    def map_create(self, attrs: MapAttrs) -> int:
        """Create a map and return an fd for it (the whole of the kernel's ``map_create``)."""
        m = self.create_map(attrs)
        mode = file_flags_for(attrs.map_flags)
        return self._new_fd(m, mode)

    def create_map(self, attrs: MapAttrs) -> Map:
        """Create a map object without an fd (the Pythonic API holds the object itself)."""
        a = attrs
        if a.btf_vmlinux_value_type_id:
            if a.map_type != MapType.STRUCT_OPS or a.btf_key_type_id or a.btf_value_type_id:
                raise BpfError(errno.EINVAL)
        elif a.btf_key_type_id and not a.btf_value_type_id:
            raise BpfError(errno.EINVAL)
        if a.map_type not in (MapType.BLOOM_FILTER, MapType.ARENA) and a.map_extra != 0:
            raise BpfError(errno.EINVAL)
        file_flags_for(a.map_flags)
        if a.numa_node != NUMA_NO_NODE and not 0 <= a.numa_node < _nr_node_ids():
            raise BpfError(errno.EINVAL)
        try:
            cls = map_class(a.map_type)
        except KeyError:
            if 0 < a.map_type < len(MapType):
                raise BpfError(errno.EINVAL, f"map type {uapi.bpftool_name(MapType(a.map_type))} is not "
                               "supported by pybpf") from None
            raise BpfError(errno.EINVAL) from None
        cls.alloc_check(a, self)
        if a.map_ifindex:
            raise BpfError(errno.EINVAL, "device-offloaded maps are not supported")
        if cls.needs_inner:
            from pybpf.kernel.maps.fd_array import map_meta_alloc_check

            if a.inner_map is None:
                a.inner_map = self.get_map(a.inner_map_fd)
            map_meta_alloc_check(a.inner_map)
        if a.name_raw is not None:
            a.name = check_obj_name(a.name_raw)
        elif a.name:
            check_obj_name(a.name.encode()[:15] + b"\0")
        if a.btf_key_type_id or a.btf_value_type_id or a.btf_vmlinux_value_type_id:
            if a.btf is None:
                self._resolve_btf_fd(a.btf_fd)
        elem_size, n_buckets, data_off, aux_off, total = cls.layout(a, self.ncpus)
        btf_raw = b""
        btf_off = 0
        if a.btf is not None and (a.btf_key_type_id or a.btf_value_type_id):
            btf_raw = bytes(getattr(a.btf, "raw", b"") or b"")
            if btf_raw:
                btf_off = (total + 7) // 8 * 8
                total = btf_off + len(btf_raw)
        if btf_raw and not a.btf_id:
            a.btf_id = self.btf_id_for(a.btf)
        map_id = self.fs.alloc_id(KIND_MAP)
        inner = a.inner_map
        header = Header(
            map_type=a.map_type, key_size=a.key_size, value_size=a.value_size, max_entries=a.max_entries,
            map_flags=a.map_flags, id=map_id, ncpus=self.ncpus, elem_size=elem_size, n_buckets=n_buckets,
            data_off=data_off, aux_off=aux_off, total_size=total, name=a.name,
            seed=int.from_bytes(os.urandom(4), "little") if not a.map_flags & uapi.BPF_F_ZERO_SEED else 0,
            inner_type=inner.map_type if inner else 0, inner_key_size=inner.key_size if inner else 0,
            inner_value_size=inner.value_size if inner else 0,
            inner_max_entries=inner.max_entries if inner else 0, inner_flags=inner.map_flags if inner else 0,
            btf_id=a.btf_id, btf_key_type_id=a.btf_key_type_id, btf_value_type_id=a.btf_value_type_id,
            spin_lock_off=a.spin_lock_off if a.spin_lock_off is not None else NO_SPIN_LOCK,
            map_extra=a.map_extra, btf_off=btf_off, btf_len=len(btf_raw),
        )
        try:
            fd, path = self.fs.create_object(KIND_MAP, map_id, total)
        except OSError as e:
            raise BpfError(e.errno or errno.ENOMEM) from None
        try:
            mapping = native.Mapping(fd, total)
        except OSError as e:
            os.close(fd)
            raise BpfError(e.errno or errno.ENOMEM) from None
        st = os.fstat(fd)
        os.close(fd)
        mapping.view[:HEADER_SIZE] = header.pack()
        if btf_raw:
            mapping.view[btf_off:btf_off + len(btf_raw)] = btf_raw
        m = cls(self, mapping, header, path)
        m.init_storage()
        with self._lock:
            self._cache[(st.st_dev, st.st_ino)] = m
            self._by_id[(KIND_MAP, map_id)] = weakref.ref(m)
        return m

    def btf_id_for(self, spec: Any) -> int:
        """The BTF object id of ``spec`` (one id per BTF blob this kernel saw, as a loaded object's
        maps and programs share their object's BTF in Linux)."""
        if spec is None:
            return 0
        with self._lock:
            hit = self._btf_ids.get(id(spec))
            if hit is not None and hit[0] is spec:
                return hit[1]
            from pybpf.kernel.pin import KIND_BTF

            bid = self.fs.alloc_id(KIND_BTF)
            self._btf_ids[id(spec)] = (spec, bid)
            return bid

    def _resolve_btf_fd(self, fd: int) -> None:
        """``btf_get_by_fd``: pybpf has no BTF objects through the syscall (yet), so any fd is
        EBADF (closed) or EINVAL (not a BTF object), as the kernel answers for those."""
        try:
            os.fstat(fd)
        except OSError:
            raise BpfError(errno.EBADF) from None
        raise BpfError(errno.EINVAL, "BTF objects through BPF_BTF_LOAD are not supported by pybpf; "
                       "pass the map's BTF through the Python API")

    # -- PROG_LOAD (object creation; the verifier runs in pybpf.kernel.prog_load) -----------------
    def create_program(self, image: ProgramImage, used_maps: dict[int, Map]) -> Program:
        """Publish a verified program: allocate its id, write its storage, reference its maps."""
        prog_id = self.fs.alloc_id(KIND_PROG)
        image.used_map_ids = tuple(used_maps)
        blob = image.serialize(prog_id)
        try:
            fd, path = self.fs.create_object(KIND_PROG, prog_id, len(blob))
        except OSError as e:
            raise BpfError(e.errno or errno.ENOMEM) from None
        try:
            os.pwrite(fd, blob, 0)
            mapping = native.Mapping(fd, len(blob))
            st = os.fstat(fd)
        finally:
            os.close(fd)
        holder = f"prog-{prog_id}"
        for mid, m in used_maps.items():
            self.fs.add_ref(holder, f"map{mid}", m.path)
        p = Program(self, prog_id, image, dict(used_maps), mapping, path)
        with self._lock:
            self._cache[(st.st_dev, st.st_ino)] = p
            self._by_id[(KIND_PROG, prog_id)] = weakref.ref(p)
        return p

    def new_fd(self, obj: Map | Program, flags: int = 0) -> int:
        """An fd for a live object (``bpf_map_new_fd`` / ``bpf_prog_new_fd``)."""
        mode = file_flags_for(flags) if isinstance(obj, Map) else os.O_RDWR
        return self._new_fd(obj, mode)

    # -- ids ------------------------------------------------------------------------------------
    def get_next_id(self, kind: str, start_id: int) -> int:
        """``bpf_obj_get_next_id``: the smallest live id greater than ``start_id`` (ENOENT if none)."""
        if start_id >= 0x7FFFFFFF:
            raise BpfError(errno.EINVAL)
        for i in self.fs.live_ids(kind):
            if i > start_id:
                return i
        raise BpfError(errno.ENOENT)

    def map_get_fd_by_id(self, map_id: int, open_flags: int = 0) -> int:
        """``BPF_MAP_GET_FD_BY_ID``: a new fd; ENOENT for an id no live map has."""
        mode = file_flags_for(open_flags)
        m = self.map_by_id(map_id) if map_id else None
        if m is None:
            raise BpfError(errno.ENOENT)
        return self._new_fd(m, mode)

    def prog_get_fd_by_id(self, prog_id: int) -> int:
        """``BPF_PROG_GET_FD_BY_ID``: a new fd; ENOENT for an id no live program has."""
        p = self.prog_by_id(prog_id) if prog_id else None
        if p is None:
            raise BpfError(errno.ENOENT)
        return self._new_fd(p, os.O_RDWR)

    def iter_maps(self) -> Iterator[Map]:
        """Every live map (bpftool's ``map show``)."""
        for i in self.fs.live_ids(KIND_MAP):
            m = self.map_by_id(i)
            if m is not None:
                yield m

    def iter_progs(self) -> Iterator[Program]:
        """Every live program (bpftool's ``prog show``)."""
        for i in self.fs.live_ids(KIND_PROG):
            p = self.prog_by_id(i)
            if p is not None:
                yield p

    # -- pinning --------------------------------------------------------------------------------
    def obj_pin(self, fd: int, pathname: PinPath, dir_fd: int | None = None) -> None:
        """``BPF_OBJ_PIN``: EINVAL for an fd that is not a bpf object (as ``bpf_fd_probe_obj``)."""
        try:
            obj = self._resolve_fd(fd)
        except BpfError:
            raise BpfError(errno.EINVAL) from None
        self.pin(obj, pathname, dir_fd)

    def pin(self, obj: Map | Program, pathname: PinPath, dir_fd: int | None = None) -> Path:
        return self.fs.pin(obj.path, pathname, dir_fd)

    def obj_get(self, pathname: PinPath, file_flags: int = 0, dir_fd: int | None = None) -> int:
        """``BPF_OBJ_GET``: an fd for the object pinned at ``pathname``."""
        mode = file_flags_for(file_flags)
        obj = self.open_pinned(pathname, dir_fd)
        if isinstance(obj, Program):
            mode = os.O_RDWR
        return self._new_fd(obj, mode)

    def open_pinned(self, pathname: PinPath, dir_fd: int | None = None) -> Map | Program:
        """The object pinned at ``pathname`` (ENOENT if nothing, EACCES if not a bpf object)."""
        path = self.fs.resolve_pin(pathname, dir_fd)
        if path.is_dir():
            raise BpfError(errno.EACCES)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise BpfError(e.errno or errno.EACCES) from None
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            obj = self._cache.get(key)
            if obj is None:
                head = os.pread(fd, HEADER_SIZE, 0)
                obj = self._instantiate(path, head, key)
        finally:
            os.close(fd)
        if obj is None:
            raise BpfError(errno.EACCES)
        return obj

    def pinned_paths(self) -> dict[tuple[str, int], list[str]]:
        """(kind, id) → pin paths, for ``show`` listings."""
        out: dict[tuple[str, int], list[str]] = {}
        inode_to_obj: dict[tuple[int, int], tuple[str, int]] = {}
        with os.scandir(self.fs.objdir) as it:
            for e in it:
                kind, _, num = e.name.partition("-")
                if num.isdigit():
                    with contextlib.suppress(OSError):
                        st = os.stat(e.path)
                        inode_to_obj[(st.st_dev, st.st_ino)] = (kind, int(num))
        for path, st in self.fs.iter_pins():
            k = inode_to_obj.get((st.st_dev, st.st_ino))
            if k is not None:
                out.setdefault(k, []).append(str(path))
        return out

    # -- references held by objects ----------------------------------------------------------------
    def hold(self, holder: Map | Program, slot: str, target: Map | Program) -> None:
        """Make ``holder`` keep ``target`` alive (a program's map, an outer map's inner map, a program array's
        program): a link in the bpffs root."""
        self.fs.add_ref(f"{holder.kind}-{holder.id}", slot, target.path)

    def release(self, holder: Map | Program, slot: str) -> None:
        """Drop the reference ``holder`` kept under ``slot``."""
        self.fs.drop_ref(f"{holder.kind}-{holder.id}", slot)

    # -- trace pipe ----------------------------------------------------------------------------
    @property
    def trace(self) -> Any:
        """The trace pipe ``bpf_trace_printk`` writes to (shared by the processes using this root)."""
        if self._trace is None:
            from pybpf.kernel.helpers.trace import TracePipe

            self._trace = TracePipe(self.fs.meta / "trace_pipe")
        return self._trace


def _in_use(fd: int) -> bool:
    """Whether some process holds a shared flock on the file (has the object open)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


_default: Kernel | None = None
_default_lock = threading.Lock()


def default_kernel() -> Kernel:
    """The process-wide :class:`Kernel` (created on first use from the environment)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Kernel()
        return _default


def set_default_kernel(kernel: Kernel | None) -> Kernel | None:
    """Replace the process-wide kernel (tests, embedding); returns the previous one."""
    global _default
    with _default_lock:
        old, _default = _default, kernel
        return old


# ENOTSUPP is re-exported for callers that match on it.
_ = ENOTSUPP
