"""``union bpf_attr`` and the info structs of Linux 6.12, as ctypes layouts.

Why ctypes: the same attribute block must be handed unchanged to the live kernel (``syscall(321)``)
and to pybpf's :func:`pybpf.kernel.syscall.bpf`, so that "same call, same errno" is literally the
same bytes. Pointers inside (keys, values, instructions, log buffer, license, path names) are real
process addresses, as the kernel reads them.

Each command's anonymous struct is a named member of :class:`BpfAttr` (``attr.map_create``,
``attr.elem``, ``attr.batch``, ``attr.prog_load``, ``attr.obj``, ``attr.test``, ``attr.get_id``,
``attr.info``, ``attr.btf_load``); ``LAST_FIELD_END`` gives, per command, the end offset of the last
field the kernel reads — the kernel's ``CHECK_ATTR`` requires every byte after it to be zero.
Offsets and sizes were checked against the 6.12 header (``sizeof(union bpf_attr) == 152``,
``sizeof(struct bpf_prog_info) == 232``, ``sizeof(struct bpf_map_info) == 88``).
"""

from __future__ import annotations

import ctypes

from pybpf.uapi import BpfCmd

__all__ = [
    "ATTR_SIZE",
    "LAST_FIELD_END",
    "BatchAttr",
    "BpfAttr",
    "BpfMapInfo",
    "BpfProgInfo",
    "BtfLoadAttr",
    "GetIdAttr",
    "InfoAttr",
    "MapCreateAttr",
    "MapElemAttr",
    "ObjAttr",
    "ProgLoadAttr",
    "TestRunAttr",
    "addr_of",
]

u8, u32, s32, u64 = ctypes.c_uint8, ctypes.c_uint32, ctypes.c_int32, ctypes.c_uint64


class MapCreateAttr(ctypes.Structure):
    """BPF_MAP_CREATE."""

    _fields_ = [
        ("map_type", u32),
        ("key_size", u32),
        ("value_size", u32),
        ("max_entries", u32),
        ("map_flags", u32),
        ("inner_map_fd", u32),
        ("numa_node", u32),
        ("map_name", ctypes.c_char * 16),
        ("map_ifindex", u32),
        ("btf_fd", u32),
        ("btf_key_type_id", u32),
        ("btf_value_type_id", u32),
        ("btf_vmlinux_value_type_id", u32),
        ("map_extra", u64),
        ("value_type_btf_obj_fd", s32),
        ("map_token_fd", s32),
    ]


class MapElemAttr(ctypes.Structure):
    """BPF_MAP_*_ELEM: ``value`` and ``next_key`` share offset 16."""

    _fields_ = [("map_fd", u32), ("key", u64), ("value", u64), ("flags", u64)]

    @property
    def next_key(self) -> int:
        return int(self.value)

    @next_key.setter
    def next_key(self, v: int) -> None:
        self.value = v


class BatchAttr(ctypes.Structure):
    """BPF_MAP_*_BATCH."""

    _fields_ = [
        ("in_batch", u64),
        ("out_batch", u64),
        ("keys", u64),
        ("values", u64),
        ("count", u32),
        ("map_fd", u32),
        ("elem_flags", u64),
        ("flags", u64),
    ]


class ProgLoadAttr(ctypes.Structure):
    """BPF_PROG_LOAD."""

    _fields_ = [
        ("prog_type", u32),
        ("insn_cnt", u32),
        ("insns", u64),
        ("license", u64),
        ("log_level", u32),
        ("log_size", u32),
        ("log_buf", u64),
        ("kern_version", u32),
        ("prog_flags", u32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", u32),
        ("expected_attach_type", u32),
        ("prog_btf_fd", u32),
        ("func_info_rec_size", u32),
        ("func_info", u64),
        ("func_info_cnt", u32),
        ("line_info_rec_size", u32),
        ("line_info", u64),
        ("line_info_cnt", u32),
        ("attach_btf_id", u32),
        ("attach_prog_fd", u32),
        ("core_relo_cnt", u32),
        ("fd_array", u64),
        ("core_relos", u64),
        ("core_relo_rec_size", u32),
        ("log_true_size", u32),
        ("prog_token_fd", s32),
    ]


class ObjAttr(ctypes.Structure):
    """BPF_OBJ_PIN / BPF_OBJ_GET."""

    _fields_ = [("pathname", u64), ("bpf_fd", u32), ("file_flags", u32), ("path_fd", s32)]


class TestRunAttr(ctypes.Structure):
    """BPF_PROG_TEST_RUN."""

    _fields_ = [
        ("prog_fd", u32),
        ("retval", u32),
        ("data_size_in", u32),
        ("data_size_out", u32),
        ("data_in", u64),
        ("data_out", u64),
        ("repeat", u32),
        ("duration", u32),
        ("ctx_size_in", u32),
        ("ctx_size_out", u32),
        ("ctx_in", u64),
        ("ctx_out", u64),
        ("flags", u32),
        ("cpu", u32),
        ("batch_size", u32),
    ]


class GetIdAttr(ctypes.Structure):
    """BPF_*_GET_NEXT_ID and BPF_*_GET_FD_BY_ID: ``start_id`` is also prog_id / map_id / btf_id."""

    _fields_ = [("start_id", u32), ("next_id", u32), ("open_flags", u32)]

    @property
    def prog_id(self) -> int:
        return int(self.start_id)

    @prog_id.setter
    def prog_id(self, v: int) -> None:
        self.start_id = v

    @property
    def map_id(self) -> int:
        return int(self.start_id)

    @map_id.setter
    def map_id(self, v: int) -> None:
        self.start_id = v


class InfoAttr(ctypes.Structure):
    """BPF_OBJ_GET_INFO_BY_FD."""

    _fields_ = [("bpf_fd", u32), ("info_len", u32), ("info", u64)]


class BtfLoadAttr(ctypes.Structure):
    """BPF_BTF_LOAD."""

    _fields_ = [
        ("btf", u64),
        ("btf_log_buf", u64),
        ("btf_size", u32),
        ("btf_log_size", u32),
        ("btf_log_level", u32),
        ("btf_log_true_size", u32),
        ("btf_flags", u32),
        ("btf_token_fd", s32),
    ]


ATTR_SIZE = 152


class BpfAttr(ctypes.Union):
    """``union bpf_attr`` (152 bytes in Linux 6.12)."""

    _fields_ = [
        ("map_create", MapCreateAttr),
        ("elem", MapElemAttr),
        ("batch", BatchAttr),
        ("prog_load", ProgLoadAttr),
        ("obj", ObjAttr),
        ("test", TestRunAttr),
        ("get_id", GetIdAttr),
        ("info", InfoAttr),
        ("btf_load", BtfLoadAttr),
        ("raw", u8 * ATTR_SIZE),
    ]


assert ctypes.sizeof(BpfAttr) == ATTR_SIZE


class BpfProgInfo(ctypes.Structure):
    """``struct bpf_prog_info`` (232 bytes)."""

    _fields_ = [
        ("type", u32),
        ("id", u32),
        ("tag", u8 * 8),
        ("jited_prog_len", u32),
        ("xlated_prog_len", u32),
        ("jited_prog_insns", u64),
        ("xlated_prog_insns", u64),
        ("load_time", u64),
        ("created_by_uid", u32),
        ("nr_map_ids", u32),
        ("map_ids", u64),
        ("name", ctypes.c_char * 16),
        ("ifindex", u32),
        ("gpl_compatible", u32),
        ("netns_dev", u64),
        ("netns_ino", u64),
        ("nr_jited_ksyms", u32),
        ("nr_jited_func_lens", u32),
        ("jited_ksyms", u64),
        ("jited_func_lens", u64),
        ("btf_id", u32),
        ("func_info_rec_size", u32),
        ("func_info", u64),
        ("nr_func_info", u32),
        ("nr_line_info", u32),
        ("line_info", u64),
        ("jited_line_info", u64),
        ("nr_jited_line_info", u32),
        ("line_info_rec_size", u32),
        ("jited_line_info_rec_size", u32),
        ("nr_prog_tags", u32),
        ("prog_tags", u64),
        ("run_time_ns", u64),
        ("run_cnt", u64),
        ("recursion_misses", u64),
        ("verified_insns", u32),
        ("attach_btf_obj_id", u32),
        ("attach_btf_id", u32),
        ("_pad", u32),
    ]


class BpfMapInfo(ctypes.Structure):
    """``struct bpf_map_info`` (88 bytes)."""

    _fields_ = [
        ("type", u32),
        ("id", u32),
        ("key_size", u32),
        ("value_size", u32),
        ("max_entries", u32),
        ("map_flags", u32),
        ("name", ctypes.c_char * 16),
        ("ifindex", u32),
        ("btf_vmlinux_value_type_id", u32),
        ("netns_dev", u64),
        ("netns_ino", u64),
        ("btf_id", u32),
        ("btf_key_type_id", u32),
        ("btf_value_type_id", u32),
        ("btf_vmlinux_id", u32),
        ("map_extra", u64),
    ]


assert ctypes.sizeof(BpfProgInfo) == 232 and ctypes.sizeof(BpfMapInfo) == 88

# End offset of each command's last field (the kernel's CMD##_LAST_FIELD): bytes after it must be 0.
LAST_FIELD_END: dict[int, int] = {
    BpfCmd.MAP_CREATE: 80,
    BpfCmd.MAP_LOOKUP_ELEM: 32,
    BpfCmd.MAP_UPDATE_ELEM: 32,
    BpfCmd.MAP_DELETE_ELEM: 16,
    BpfCmd.MAP_GET_NEXT_KEY: 24,
    BpfCmd.MAP_LOOKUP_AND_DELETE_ELEM: 32,
    BpfCmd.MAP_FREEZE: 4,
    BpfCmd.PROG_LOAD: 148,
    BpfCmd.OBJ_PIN: 20,
    BpfCmd.OBJ_GET: 20,
    BpfCmd.PROG_TEST_RUN: 76,
    BpfCmd.PROG_GET_NEXT_ID: 8,
    BpfCmd.MAP_GET_NEXT_ID: 8,
    BpfCmd.BTF_GET_NEXT_ID: 8,
    BpfCmd.LINK_GET_NEXT_ID: 8,
    BpfCmd.PROG_GET_FD_BY_ID: 4,
    BpfCmd.MAP_GET_FD_BY_ID: 12,
    BpfCmd.BTF_GET_FD_BY_ID: 4,
    BpfCmd.OBJ_GET_INFO_BY_FD: 16,
    BpfCmd.MAP_LOOKUP_BATCH: 56,
    BpfCmd.MAP_LOOKUP_AND_DELETE_BATCH: 56,
    BpfCmd.MAP_UPDATE_BATCH: 56,
    BpfCmd.MAP_DELETE_BATCH: 56,
    BpfCmd.BTF_LOAD: 40,
}


def addr_of(obj: ctypes._CData | ctypes.Array[ctypes.c_char] | None) -> int:  # type: ignore[name-defined]
    """The process address of a ctypes object (0 for None): what goes in a pointer field."""
    if obj is None:
        return 0
    return ctypes.addressof(obj)
