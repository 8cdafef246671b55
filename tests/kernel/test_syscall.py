"""bpf(cmd, attr) end to end: outputs written back into the attr and user buffers."""

from __future__ import annotations

import ctypes
import errno
import struct

import pytest

from pybpf.errors import BpfError, NotSupportedError, VerifierError
from pybpf.kernel import Kernel
from pybpf.kernel.attr import BpfAttr, BpfProgInfo, addr_of
from pybpf.kernel.syscall import bpf, sys_bpf
from pybpf.uapi import BpfCmd, MapType

RET2 = bytes.fromhex("b700000002000000" "9500000000000000")


def buf(data: bytes | int) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(data, len(data)) if isinstance(data, bytes) else \
        ctypes.create_string_buffer(data)


def create(kernel: Kernel, t: int, ks: int, vs: int, n: int) -> int:
    a = BpfAttr()
    a.map_create.map_type, a.map_create.key_size, a.map_create.value_size, a.map_create.max_entries = t, ks, vs, n
    return bpf(BpfCmd.MAP_CREATE, a, kernel=kernel)


def elem(kernel: Kernel, cmd: int, fd: int, key: bytes | None, value: ctypes.Array[ctypes.c_char],
         flags: int = 0) -> int:
    a = BpfAttr()
    kb = buf(key) if key is not None else None
    a.elem.map_fd, a.elem.key, a.elem.value, a.elem.flags = fd, addr_of(kb), addr_of(value), flags
    return bpf(cmd, a, kernel=kernel)


def test_map_round_trip_through_attrs(kernel: Kernel) -> None:
    fd = create(kernel, MapType.HASH, 4, 8, 8)
    elem(kernel, BpfCmd.MAP_UPDATE_ELEM, fd, struct.pack("<I", 3), buf(b"ABCDEFGH"))
    out = buf(8)
    elem(kernel, BpfCmd.MAP_LOOKUP_ELEM, fd, struct.pack("<I", 3), out)
    assert out.raw == b"ABCDEFGH"
    nxt = buf(4)
    elem(kernel, BpfCmd.MAP_GET_NEXT_KEY, fd, None, nxt)
    assert nxt.raw == struct.pack("<I", 3)
    assert sys_bpf(BpfCmd.MAP_DELETE_ELEM, _del(fd, struct.pack("<I", 3)), kernel=kernel) == 0
    assert sys_bpf(BpfCmd.MAP_DELETE_ELEM, _del(fd, struct.pack("<I", 3)), kernel=kernel) == -errno.ENOENT


def _del(fd: int, key: bytes) -> BpfAttr:
    a = BpfAttr()
    kb = buf(key)
    a.elem.map_fd, a.elem.key = fd, addr_of(kb)
    _del.keep = kb  # type: ignore[attr-defined]
    return a


def test_batch_lookup_writes_keys_values_count_and_token(kernel: Kernel) -> None:
    fd = create(kernel, MapType.ARRAY, 4, 4, 5)
    for i in range(5):
        elem(kernel, BpfCmd.MAP_UPDATE_ELEM, fd, struct.pack("<I", i), buf(struct.pack("<I", i * 11)))
    keys, values, token = buf(4 * 3), buf(4 * 3), buf(4)
    a = BpfAttr()
    a.batch.map_fd, a.batch.count = fd, 3
    a.batch.keys, a.batch.values, a.batch.out_batch = addr_of(keys), addr_of(values), addr_of(token)
    assert bpf(BpfCmd.MAP_LOOKUP_BATCH, a, kernel=kernel) == 0
    assert a.batch.count == 3
    assert struct.unpack("<3I", values.raw) == (0, 11, 22) and token.raw == struct.pack("<I", 2)
    a.batch.in_batch = addr_of(token)
    with pytest.raises(BpfError) as e:  # the rest, then the end of the map: ENOENT with count 2
        bpf(BpfCmd.MAP_LOOKUP_BATCH, a, kernel=kernel)
    assert e.value.errno == errno.ENOENT and a.batch.count == 2
    assert struct.unpack("<2I", values.raw[:8]) == (33, 44)


def _prog_load(kernel: Kernel, code: bytes, log_level: int = 0,
               log_size: int = 0) -> tuple[int, BpfAttr, ctypes.Array[ctypes.c_char]]:
    a = BpfAttr()
    ib, lic = buf(code), ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(max(log_size, 1))
    p = a.prog_load
    p.prog_type, p.insn_cnt, p.insns, p.license = 6, len(code) // 8, addr_of(ib), addr_of(lic)
    p.log_level, p.log_size, p.log_buf = log_level, log_size, addr_of(log) if log_size else 0
    _prog_load.keep = (ib, lic)  # type: ignore[attr-defined]
    return bpf(BpfCmd.PROG_LOAD, a, kernel=kernel), a, log


def test_prog_load_log_buffer_and_true_size(kernel: Kernel) -> None:
    _fd, a, log = _prog_load(kernel, RET2, log_level=1, log_size=4096)
    text = log.value.decode()
    assert text.startswith("processed 2 insns (limit 1000000)")
    assert a.prog_load.log_true_size == len(text) + 1
    with pytest.raises(VerifierError) as e:
        _prog_load(kernel, RET2, log_level=1, log_size=16)
    assert e.value.errno == errno.ENOSPC


def test_log_truncation_keeps_the_tail() -> None:
    from pybpf.kernel.prog_load import finalize_log

    body, true_size, cut = finalize_log("0123456789", 1, 5)
    assert (body, true_size, cut) == (b"6789\0", 11, True)
    body, _, cut = finalize_log("0123456789", 1 | 8, 5)  # BPF_LOG_FIXED keeps the head
    assert (body, cut) == (b"0123\0", True)
    assert finalize_log("abc", 1, 64)[:2] == (b"abc\0", 4)


def test_test_run_through_attrs_and_info(kernel: Kernel) -> None:
    kernel.stats_enabled = True  # kernel.bpf_stats_enabled: run_time_ns / run_cnt are counted
    fd, _a, _log = _prog_load(kernel, RET2)
    data, out = buf(bytes(range(64))), buf(128)
    a = BpfAttr()
    t = a.test
    t.prog_fd, t.data_in, t.data_size_in, t.data_out, t.data_size_out, t.repeat = fd, addr_of(data), 64, \
        addr_of(out), 128, 10
    assert bpf(BpfCmd.PROG_TEST_RUN, a, kernel=kernel) == 0
    assert (t.retval, t.data_size_out) == (2, 64) and out.raw[:64] == bytes(range(64))
    info = BpfProgInfo()
    xl = buf(64)
    info.xlated_prog_len, info.xlated_prog_insns = 64, addr_of(xl)
    ia = BpfAttr()
    ia.info.bpf_fd, ia.info.info_len, ia.info.info = fd, ctypes.sizeof(info), addr_of(info)
    bpf(BpfCmd.OBJ_GET_INFO_BY_FD, ia, kernel=kernel)
    assert info.type == 6 and info.xlated_prog_len == 16 and xl.raw[:16] == RET2
    assert info.run_cnt == 10 and info.gpl_compatible == 1


def test_next_id_and_pin_through_attrs(kernel: Kernel) -> None:
    fd = create(kernel, MapType.ARRAY, 4, 4, 1)
    a = BpfAttr()
    bpf(BpfCmd.MAP_GET_NEXT_ID, a, kernel=kernel)
    assert a.get_id.next_id == kernel.get_map(fd).id
    path = ctypes.create_string_buffer(b"/sys/fs/bpf/via_attr")
    o = BpfAttr()
    o.obj.pathname, o.obj.bpf_fd = addr_of(path), fd
    assert bpf(BpfCmd.OBJ_PIN, o, kernel=kernel) == 0
    g = BpfAttr()
    g.obj.pathname = addr_of(path)
    fd2 = bpf(BpfCmd.OBJ_GET, g, kernel=kernel)
    assert kernel.get_map(fd2) is kernel.get_map(fd)


def test_commands_pybpf_lacks_say_so(kernel: Kernel) -> None:
    with pytest.raises(NotSupportedError):
        bpf(BpfCmd.LINK_CREATE, BpfAttr(), kernel=kernel)
    assert sys_bpf(BpfCmd.PROG_ATTACH, BpfAttr(), kernel=kernel) < 0
