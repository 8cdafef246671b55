"""``bpf(cmd, attr, size)``: the syscall-shaped seam, with the kernel's attributes and errnos.

``attr`` is a :class:`~pybpf.kernel.attr.BpfAttr` (``union bpf_attr`` of Linux 6.12) or a writable
buffer of the same bytes; pointers in it are real process addresses. :func:`bpf` decodes it exactly
as ``__sys_bpf`` does — tail bytes beyond the union must be zero (E2BIG), bytes after the command's
last field must be zero (EINVAL, the kernel's ``CHECK_ATTR``), user memory is read and written with
EFAULT on bad addresses — and runs the command on a :class:`~pybpf.kernel.objects.Kernel`. Output
fields (``next_id``, ``info_len``, ``test.retval``, ``batch.count``, ``log_true_size``...) are written
back into ``attr`` as the kernel writes them to user memory.

Three entry points:

* :func:`bpf` returns the command's result (an fd, or 0) and raises :class:`~pybpf.errors.BpfError`
  carrying the errno Linux returns;
* :func:`sys_bpf` returns ``-errno`` instead of raising, like the raw system call, so tables can
  compare integers;
* :func:`live_bpf` hands the same attr to the running kernel (``syscall(__NR_bpf)``), also returning
  ``-errno`` — the oracle for "same call, same errno".
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from collections.abc import Callable
from typing import Any

from pybpf.errors import ENOTSUPP, BpfError, NotSupportedError
from pybpf.kernel import native
from pybpf.kernel.attr import ATTR_SIZE, LAST_FIELD_END, BpfAttr, BpfMapInfo, BpfProgInfo
from pybpf.kernel.maps.base import F_LOCK, MapAttrs
from pybpf.kernel.objects import Kernel, default_kernel
from pybpf.kernel.pin import KIND_MAP, KIND_PROG
from pybpf.kernel.program import Program
from pybpf.uapi import BpfCmd, MapType

__all__ = ["bpf", "live_bpf", "sys_bpf"]

PAGE_SIZE = native.PAGE_SIZE
BPF_F_PATH_FD = 1 << 14
BPF_OBJ_FLAG_MASK = (1 << 3) | (1 << 4)  # BPF_F_RDONLY | BPF_F_WRONLY
U32_MAX = 0xFFFFFFFF


# ------------------------------------------------------------------------------------------------
# entry points

AttrLike = BpfAttr | bytearray | memoryview | ctypes.Array[Any] | ctypes.Structure


def _attr_buffer(attr: AttrLike | None, size: int | None) -> tuple[int, int]:
    """(address, size) of the caller's attribute block."""
    if attr is None:
        return 0, size or 0
    if isinstance(attr, bytearray | memoryview):
        buf = (ctypes.c_char * len(attr)).from_buffer(attr)
        return ctypes.addressof(buf), len(attr) if size is None else size
    return ctypes.addressof(attr), ctypes.sizeof(attr) if size is None else size


def bpf(cmd: int, attr: AttrLike | None, size: int | None = None, *, kernel: Kernel | None = None) -> int:
    """Run bpf command ``cmd`` on ``attr`` (see the module docstring); raises BpfError."""
    addr, n = _attr_buffer(attr, size)
    return bpf_at(cmd, addr, n, kernel=kernel)


def sys_bpf(cmd: int, attr: AttrLike | None, size: int | None = None, *, kernel: Kernel | None = None) -> int:
    """:func:`bpf`, but failures return ``-errno`` like the raw system call."""
    try:
        return bpf(cmd, attr, size, kernel=kernel)
    except BpfError as e:
        return -(e.errno or errno.EINVAL)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_NR_BPF = {"x86_64": 321, "amd64": 321, "aarch64": 280, "arm64": 280}.get(platform.machine().lower(), -1)


def live_bpf(cmd: int, attr: AttrLike | None, size: int | None = None) -> int:
    """The running kernel's bpf(2) on the same attr: result, or ``-errno``."""
    if _NR_BPF < 0:
        return -errno.ENOSYS
    addr, n = _attr_buffer(attr, size)
    ret = _libc.syscall(ctypes.c_long(_NR_BPF), ctypes.c_long(cmd), ctypes.c_void_p(addr or None),
                        ctypes.c_uint(n))
    if ret < 0:
        return -ctypes.get_errno()
    return int(ret)


# ------------------------------------------------------------------------------------------------
# __sys_bpf


def bpf_at(cmd: int, uattr: int, size: int, *, kernel: Kernel | None = None) -> int:
    """``__sys_bpf`` on the attribute block at process address ``uattr``."""
    k = kernel if kernel is not None else default_kernel()
    # bpf_check_uarg_tail_zero
    if size > PAGE_SIZE:
        raise BpfError(errno.E2BIG)
    if size > ATTR_SIZE:
        tail = native.copy_from_user(uattr + ATTR_SIZE, size - ATTR_SIZE)
        if tail is None:
            raise BpfError(errno.EFAULT)
        if any(tail):
            raise BpfError(errno.E2BIG)
    n = min(size, ATTR_SIZE)
    raw = native.copy_from_user(uattr, n) if n else b""
    if raw is None:
        raise BpfError(errno.EFAULT)
    attr = BpfAttr()
    ctypes.memmove(ctypes.addressof(attr), raw, n)
    handler = _COMMANDS.get(int(cmd))
    if handler is None:
        try:
            name = BpfCmd(cmd).name
        except ValueError:
            raise BpfError(errno.EINVAL) from None
        raise NotSupportedError(f"bpf command BPF_{name} is not supported by pybpf", ENOTSUPP)
    return handler(_Call(k, int(cmd), attr, uattr, size))


class _Call:
    """One command invocation: the kernel, the decoded attr, and where to write outputs back."""

    __slots__ = ("attr", "cmd", "k", "size", "uattr")

    def __init__(self, k: Kernel, cmd: int, attr: BpfAttr, uattr: int, size: int) -> None:
        self.k, self.cmd, self.attr, self.uattr, self.size = k, cmd, attr, uattr, size

    def check_attr(self) -> None:
        """``CHECK_ATTR``: every byte after the command's last field must be zero."""
        end = LAST_FIELD_END[self.cmd]
        if any(bytes(self.attr.raw)[end:]):
            raise BpfError(errno.EINVAL)

    def put(self, offset: int, data: bytes) -> None:
        """Write an output field back to the caller's attr (EFAULT if that fails)."""
        if not native.copy_to_user(self.uattr + offset, data):
            raise BpfError(errno.EFAULT)


def _u32(v: int) -> bytes:
    return (v & U32_MAX).to_bytes(4, "little")


def _copy_in(addr: int, n: int) -> bytes:
    data = native.copy_from_user(addr, n)
    if data is None:
        raise BpfError(errno.EFAULT)
    return data


def _copy_out(addr: int, data: bytes) -> None:
    if not native.copy_to_user(addr, data):
        raise BpfError(errno.EFAULT)


def _copy_key(ukey: int, key_size: int) -> bytes | None:
    """``__bpf_copy_key``: the key, None for keyless maps (EINVAL if a key pointer is given)."""
    if key_size:
        return _copy_in(ukey, key_size)
    if ukey:
        raise BpfError(errno.EINVAL)
    return None


# ------------------------------------------------------------------------------------------------
# map commands


def _map_create(c: _Call) -> int:
    c.check_attr()
    a = c.attr.map_create
    flags = a.map_flags
    if flags & (1 << 16):  # BPF_F_TOKEN_FD
        raise NotSupportedError("BPF tokens are not supported by pybpf", errno.EINVAL)
    attrs = MapAttrs(
        map_type=a.map_type,
        key_size=a.key_size,
        value_size=a.value_size,
        max_entries=a.max_entries,
        map_flags=flags,
        numa_node=a.numa_node if flags & 4 else -1,  # BPF_F_NUMA_NODE
        map_ifindex=a.map_ifindex,
        btf_key_type_id=a.btf_key_type_id,
        btf_value_type_id=a.btf_value_type_id,
        btf_vmlinux_value_type_id=a.btf_vmlinux_value_type_id,
        map_extra=a.map_extra,
        inner_map_fd=a.inner_map_fd,
        btf_fd=a.btf_fd,
        name_raw=bytes(c.attr.raw[28:44]),  # map_name: all 16 bytes (c_char arrays stop at NUL)
    )
    return c.k.map_create(attrs)


def _map_rw(c: _Call, fd: int, *, read: bool = False, write: bool = False) -> Any:
    m = c.k.get_map(fd)
    can_read, can_write = c.k.map_perms(fd, m)
    if (read and not can_read) or (write and not can_write):
        raise BpfError(errno.EPERM)
    return m


def _map_lookup_elem(c: _Call) -> int:
    c.check_attr()
    a = c.attr.elem
    if a.flags & ~F_LOCK:
        raise BpfError(errno.EINVAL)
    m = _map_rw(c, a.map_fd, read=True)
    if a.flags & F_LOCK and m.spin_lock_off is None:
        raise BpfError(errno.EINVAL)
    key = _copy_key(a.key, m.key_size)
    vsize = m.value_size_sys
    if m.map_type == MapType.BLOOM_FILTER:
        value = _copy_in(a.value, vsize)
        m.peek_elem_sys(value)
        return 0
    value = m.lookup_elem_sys(key if key is not None else b"", a.flags)
    _copy_out(a.value, value[:vsize].ljust(vsize, b"\0"))
    return 0


def _map_update_elem(c: _Call) -> int:
    c.check_attr()
    a = c.attr.elem
    m = _map_rw(c, a.map_fd, write=True)
    if a.flags & F_LOCK and m.spin_lock_off is None:
        raise BpfError(errno.EINVAL)
    key = _copy_key(a.key, m.key_size)
    value = _copy_in(a.value, m.value_size_sys)
    m.update_elem_sys(key if key is not None else b"", value, a.flags)
    return 0


def _map_delete_elem(c: _Call) -> int:
    c.check_attr()
    a = c.attr.elem
    m = _map_rw(c, a.map_fd, write=True)
    key = _copy_key(a.key, m.key_size)
    m.delete_elem_sys(key if key is not None else b"")
    return 0


def _map_get_next_key(c: _Call) -> int:
    c.check_attr()
    a = c.attr.elem
    m = _map_rw(c, a.map_fd, read=True)
    key = _copy_key(a.key, m.key_size) if a.key else None
    nxt = m.get_next_key(key)
    _copy_out(a.next_key, nxt[:m.key_size])
    return 0


_LOOKUP_AND_DELETE_TYPES = (MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH)


def _map_lookup_and_delete_elem(c: _Call) -> int:
    c.check_attr()
    a = c.attr.elem
    if a.flags & ~F_LOCK:
        raise BpfError(errno.EINVAL)
    m = c.k.get_map(a.map_fd)
    can_read, can_write = c.k.map_perms(a.map_fd, m)
    if not can_read or not can_write:
        raise BpfError(errno.EPERM)
    if a.flags and m.map_type in (MapType.QUEUE, MapType.STACK):
        raise BpfError(errno.EINVAL)
    if a.flags & F_LOCK and m.spin_lock_off is None:
        raise BpfError(errno.EINVAL)
    key = _copy_key(a.key, m.key_size)
    vsize = m.value_size_sys
    if m.map_type in (MapType.QUEUE, MapType.STACK):
        value = m.lookup_and_delete_elem_sys(b"", 0)
    elif m.map_type in _LOOKUP_AND_DELETE_TYPES:
        value = m.lookup_and_delete_elem_sys(key or b"", a.flags)
    else:
        raise BpfError(ENOTSUPP)
    _copy_out(a.value, value[:vsize].ljust(vsize, b"\0"))
    return 0


def _map_freeze(c: _Call) -> int:
    c.check_attr()
    fd = c.attr.elem.map_fd
    m = c.k.get_map(fd)
    if m.map_type == MapType.STRUCT_OPS or m.spin_lock_off is not None:
        raise BpfError(ENOTSUPP)
    _r, can_write = c.k.map_perms(fd, m)
    if not can_write:
        raise BpfError(errno.EPERM)
    m.freeze()
    return 0


# -- batch ---------------------------------------------------------------------------------------

_BATCH_COUNT_OFF = 32  # offsetof(union bpf_attr, batch.count)


def _map_batch(c: _Call) -> int:
    c.check_attr()
    b = c.attr.batch
    cmd = c.cmd
    has_read = cmd in (BpfCmd.MAP_LOOKUP_BATCH, BpfCmd.MAP_LOOKUP_AND_DELETE_BATCH)
    has_write = cmd != BpfCmd.MAP_LOOKUP_BATCH
    m = c.k.get_map(b.map_fd)
    can_read, can_write = c.k.map_perms(b.map_fd, m)
    if (has_read and not can_read) or (has_write and not can_write):
        raise BpfError(errno.EPERM)
    htab = getattr(m, "htab_batch", False)
    if cmd == BpfCmd.MAP_LOOKUP_BATCH:
        if htab:
            return _htab_batch(c, m, delete=False)
        if not m.has_lookup_batch:
            raise BpfError(ENOTSUPP)
        return _generic_lookup_batch(c, m)
    if cmd == BpfCmd.MAP_LOOKUP_AND_DELETE_BATCH:
        if htab:
            return _htab_batch(c, m, delete=True)
        raise BpfError(ENOTSUPP)
    if cmd == BpfCmd.MAP_UPDATE_BATCH:
        if not m.has_update_batch:
            raise BpfError(ENOTSUPP)
        return _generic_update_batch(c, m)
    if not m.has_delete_batch:
        raise BpfError(ENOTSUPP)
    return _generic_delete_batch(c, m)


def _elem_flags_ok(m: Any, elem_flags: int) -> None:
    if elem_flags & ~F_LOCK:
        raise BpfError(errno.EINVAL)
    if elem_flags & F_LOCK and m.spin_lock_off is None:
        raise BpfError(errno.EINVAL)


def _batch_begin(c: _Call, m: Any) -> int:
    """What every batch op starts with: the element flags checked, ``count`` read (the most
    elements to handle; 0 = nothing to do) and the output ``count`` zeroed."""
    b = c.attr.batch
    _elem_flags_ok(m, b.elem_flags)
    if b.count:
        c.put(_BATCH_COUNT_OFF, _u32(0))
    return int(b.count)


def _generic_lookup_batch(c: _Call, m: Any) -> int:
    b = c.attr.batch
    max_count = _batch_begin(c, m)
    if not max_count:
        return 0
    vsize = m.value_size_sys
    prev = _copy_in(b.in_batch, m.key_size) if b.in_batch else None
    cp = 0
    err = 0
    while cp < max_count:
        try:
            key = m.get_next_key(prev)
        except BpfError as e:
            err = e.errno or errno.EINVAL
            break
        try:
            value = m.lookup_elem_sys(key, b.elem_flags)
        except BpfError as e:
            if e.errno != errno.ENOENT:
                raise
            prev = key
            continue
        _copy_out(b.keys + cp * m.key_size, key)
        _copy_out(b.values + cp * vsize, value[:vsize].ljust(vsize, b"\0"))
        cp += 1
        prev = key
    c.put(_BATCH_COUNT_OFF, _u32(cp))
    if cp and prev is not None:
        _copy_out(b.out_batch, prev)
    if err:
        raise BpfError(err)
    return 0


def _generic_update_batch(c: _Call, m: Any) -> int:
    b = c.attr.batch
    max_count = _batch_begin(c, m)
    if not max_count:
        return 0
    vsize = m.value_size_sys
    cp = 0
    try:
        while cp < max_count:
            key = _copy_in(b.keys + cp * m.key_size, m.key_size)
            value = _copy_in(b.values + cp * vsize, vsize)
            m.update_elem_sys(key, value, b.elem_flags)
            cp += 1
    finally:
        c.put(_BATCH_COUNT_OFF, _u32(cp))
    return 0


def _generic_delete_batch(c: _Call, m: Any) -> int:
    b = c.attr.batch
    max_count = _batch_begin(c, m)
    if not max_count:
        return 0
    cp = 0
    try:
        while cp < max_count:
            key = _copy_in(b.keys + cp * m.key_size, m.key_size)
            m.delete_elem_sys(key)
            cp += 1
    finally:
        c.put(_BATCH_COUNT_OFF, _u32(cp))
    return 0


def _htab_batch(c: _Call, m: Any, *, delete: bool) -> int:
    b = c.attr.batch
    _elem_flags_ok(m, b.elem_flags)
    if b.flags:
        raise BpfError(errno.EINVAL)
    max_count = b.count
    if not max_count:
        return 0
    c.put(_BATCH_COUNT_OFF, _u32(0))
    batch = int.from_bytes(_copy_in(b.in_batch, 4), "little") if b.in_batch else 0
    keys, values, nxt, err = m.lookup_batch_htab(batch, max_count, b.elem_flags, delete)
    if batch >= m.n_buckets:
        raise BpfError(errno.ENOENT)
    vsize = m.value_size_sys
    if keys:
        _copy_out(b.keys, b"".join(keys))
        _copy_out(b.values, b"".join(v[:vsize].ljust(vsize, b"\0") for v in values))
    _copy_out(b.out_batch, _u32(nxt))
    c.put(_BATCH_COUNT_OFF, _u32(len(keys)))
    if err:
        raise BpfError(err)
    return 0


# ------------------------------------------------------------------------------------------------
# objects: pin / get, ids, info


def _path_args(c: _Call, *, get: bool) -> tuple[str, int | None]:
    o = c.attr.obj
    c.check_attr()
    allowed = (BPF_OBJ_FLAG_MASK | BPF_F_PATH_FD) if get else BPF_F_PATH_FD
    if o.file_flags & ~allowed:
        raise BpfError(errno.EINVAL)
    if get and o.bpf_fd != 0:
        raise BpfError(errno.EINVAL)
    if not o.file_flags & BPF_F_PATH_FD and o.path_fd:
        raise BpfError(errno.EINVAL)
    raw = native.strncpy_from_user(o.pathname, 4096) if o.pathname else None
    if raw is None:
        raise BpfError(errno.EFAULT)
    if not raw:
        raise BpfError(errno.ENOENT)
    dir_fd = o.path_fd if o.file_flags & BPF_F_PATH_FD else None
    return os.fsdecode(raw), dir_fd


def _obj_pin(c: _Call) -> int:
    path, dir_fd = _path_args(c, get=False)
    c.k.obj_pin(c.attr.obj.bpf_fd, path, dir_fd)
    return 0


def _obj_get(c: _Call) -> int:
    path, dir_fd = _path_args(c, get=True)
    return c.k.obj_get(path, c.attr.obj.file_flags & BPF_OBJ_FLAG_MASK, dir_fd)


def _get_next_id(kind: str) -> Callable[[_Call], int]:
    def handler(c: _Call) -> int:
        c.check_attr()
        g = c.attr.get_id
        if g.start_id >= 0x7FFFFFFF:
            raise BpfError(errno.EINVAL)
        nxt = c.k.get_next_id(kind, g.start_id)
        c.put(4, _u32(nxt))
        return 0

    return handler


def _btf_get_next_id(c: _Call) -> int:
    c.check_attr()
    if c.attr.get_id.start_id >= 0x7FFFFFFF:
        raise BpfError(errno.EINVAL)
    raise BpfError(errno.ENOENT)


def _prog_get_fd_by_id(c: _Call) -> int:
    c.check_attr()
    return c.k.prog_get_fd_by_id(c.attr.get_id.start_id)


def _map_get_fd_by_id(c: _Call) -> int:
    c.check_attr()
    g = c.attr.get_id
    if g.open_flags & ~BPF_OBJ_FLAG_MASK:
        raise BpfError(errno.EINVAL)
    return c.k.map_get_fd_by_id(g.start_id, g.open_flags)


def _check_uarg_tail_zero(uaddr: int, expected: int, actual: int) -> None:
    """``bpf_check_uarg_tail_zero``."""
    if actual > PAGE_SIZE:
        raise BpfError(errno.E2BIG)
    if actual <= expected:
        return
    tail = native.copy_from_user(uaddr + expected, actual - expected)
    if tail is None:
        raise BpfError(errno.EFAULT)
    if any(tail):
        raise BpfError(errno.E2BIG)


_INFO_LEN_OFF = 4  # offsetof(union bpf_attr, info.info_len)


def _obj_get_info_by_fd(c: _Call) -> int:
    c.check_attr()
    i = c.attr.info
    try:
        obj = c.k._resolve_fd(i.bpf_fd)
    except BpfError as e:
        if e.errno == errno.EBADF:
            raise BpfError(errno.EBADFD) from None
        raise
    if isinstance(obj, Program):
        return _prog_info(c, obj)
    return _map_info(c, obj)


def _map_info(c: _Call, m: Any) -> int:
    i = c.attr.info
    size = ctypes.sizeof(BpfMapInfo)
    _check_uarg_tail_zero(i.info, size, i.info_len)
    n = min(size, i.info_len)
    info = BpfMapInfo()
    info.type = m.map_type
    info.id = m.id
    info.key_size = m.key_size
    info.value_size = m.value_size
    info.max_entries = m.max_entries
    info.map_flags = m.map_flags
    info.map_extra = m.map_extra
    info.name = m.name.encode()[:16]
    if m.btf_id:
        info.btf_id = m.btf_id
        info.btf_key_type_id = m.btf_key_type_id
        info.btf_value_type_id = m.btf_value_type_id
    _copy_out(i.info, bytes(info)[:n])
    c.put(_INFO_LEN_OFF, _u32(n))
    return 0


def _prog_info(c: _Call, p: Program) -> int:
    i = c.attr.info
    size = ctypes.sizeof(BpfProgInfo)
    _check_uarg_tail_zero(i.info, 228, i.info_len)  # offsetofend(struct bpf_prog_info, attach_btf_id)
    n = min(size, i.info_len)
    info = BpfProgInfo()
    if n:
        ctypes.memmove(ctypes.addressof(info), _copy_in(i.info, n), n)
    ulen_maps = info.nr_map_ids
    ulen_xlated = info.xlated_prog_len
    info.type = int(p.image.prog_type)
    info.id = p.id
    info.load_time = p.load_time
    info.created_by_uid = p.image.created_by_uid
    info.gpl_compatible = 1 if p.gpl_compatible else 0
    for j, b in enumerate(p.tag):
        info.tag[j] = b
    info.name = p.name.encode()[:16]
    map_ids = list(p.used_maps)
    info.nr_map_ids = len(map_ids)
    for j in range(min(ulen_maps, len(map_ids))):
        _copy_out(info.map_ids + 4 * j, _u32(map_ids[j]))
    info.run_time_ns = p.run_time_ns
    info.run_cnt = p.run_cnt
    info.verified_insns = p.image.verified_insns
    info.btf_id = p.image.btf_id
    info.attach_btf_id = p.image.attach_btf_id
    xlated = p.insns.encode()
    info.xlated_prog_len = len(xlated)
    if ulen_xlated and info.xlated_prog_insns:
        _copy_out(info.xlated_prog_insns, xlated[:min(ulen_xlated, len(xlated))])
    info.jited_prog_len = 0
    info.nr_jited_ksyms = 0
    info.nr_jited_func_lens = 0
    info.nr_func_info = 0
    info.nr_line_info = 0
    info.nr_jited_line_info = 0
    info.nr_prog_tags = 0
    _copy_out(i.info, bytes(info)[:n])
    c.put(_INFO_LEN_OFF, _u32(n))
    return 0


# ------------------------------------------------------------------------------------------------
# programs


def _prog_load(c: _Call) -> int:
    from pybpf.kernel.prog_load import prog_load_attr

    c.check_attr()
    return prog_load_attr(c.k, c.attr, c.uattr, c.size)


def _prog_test_run(c: _Call) -> int:
    from pybpf.kernel.test_run import test_run_attr

    c.check_attr()
    t = c.attr.test
    if (t.ctx_size_in and not t.ctx_in) or (not t.ctx_size_in and t.ctx_in):
        raise BpfError(errno.EINVAL)
    if (t.ctx_size_out and not t.ctx_out) or (not t.ctx_size_out and t.ctx_out):
        raise BpfError(errno.EINVAL)
    prog = c.k.get_prog(t.prog_fd)
    return test_run_attr(c.k, prog, c.attr, c.uattr)


_COMMANDS: dict[int, Callable[[_Call], int]] = {
    BpfCmd.MAP_CREATE: _map_create,
    BpfCmd.MAP_LOOKUP_ELEM: _map_lookup_elem,
    BpfCmd.MAP_UPDATE_ELEM: _map_update_elem,
    BpfCmd.MAP_DELETE_ELEM: _map_delete_elem,
    BpfCmd.MAP_GET_NEXT_KEY: _map_get_next_key,
    BpfCmd.MAP_LOOKUP_AND_DELETE_ELEM: _map_lookup_and_delete_elem,
    BpfCmd.MAP_FREEZE: _map_freeze,
    BpfCmd.MAP_LOOKUP_BATCH: _map_batch,
    BpfCmd.MAP_LOOKUP_AND_DELETE_BATCH: _map_batch,
    BpfCmd.MAP_UPDATE_BATCH: _map_batch,
    BpfCmd.MAP_DELETE_BATCH: _map_batch,
    BpfCmd.PROG_LOAD: _prog_load,
    BpfCmd.OBJ_PIN: _obj_pin,
    BpfCmd.OBJ_GET: _obj_get,
    BpfCmd.PROG_TEST_RUN: _prog_test_run,
    BpfCmd.PROG_GET_NEXT_ID: _get_next_id(KIND_PROG),
    BpfCmd.MAP_GET_NEXT_ID: _get_next_id(KIND_MAP),
    BpfCmd.BTF_GET_NEXT_ID: _btf_get_next_id,
    BpfCmd.PROG_GET_FD_BY_ID: _prog_get_fd_by_id,
    BpfCmd.MAP_GET_FD_BY_ID: _map_get_fd_by_id,
    BpfCmd.OBJ_GET_INFO_BY_FD: _obj_get_info_by_fd,
}
