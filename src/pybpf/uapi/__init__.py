"""The kernel's user-visible numbering (``include/uapi/linux/bpf.h``) as Python enums and constants.

Everything in ``_generated`` is produced by ``tools/gen_uapi.py`` from Linux 6.12. This module adds
the two things every caller wants and C does not have: the C enumerator name of a member
(``MapType.HASH.c_name == "BPF_MAP_TYPE_HASH"``) and bpftool's short name
(``MapType.HASH.bpftool_name == "hash"``), plus lookups in the other direction.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

from pybpf.uapi import _generated as _g
from pybpf.uapi._generated import *  # noqa: F403 - the generated module is the UAPI surface
from pybpf.uapi._generated import (
    AttachType,
    BpfCmd,
    BpfRetCode,
    HelperId,
    LinkType,
    MapType,
    ProgType,
    SkAction,
    XdpAction,
)

__all__ = [
    "AttachType",
    "BpfCmd",
    "BpfRetCode",
    "HelperId",
    "LinkType",
    "MapType",
    "ProgType",
    "SkAction",
    "XdpAction",
    "bpftool_name",
    "c_name",
    "from_bpftool_name",
    "helper_name",
]

_PREFIX: dict[type[IntEnum], str] = {
    BpfCmd: "BPF_",
    MapType: "BPF_MAP_TYPE_",
    ProgType: "BPF_PROG_TYPE_",
    AttachType: "BPF_",
    LinkType: "BPF_LINK_TYPE_",
    HelperId: "BPF_FUNC_",
    XdpAction: "XDP_",
    SkAction: "SK_",
    BpfRetCode: "BPF_",
}
_NAMES: dict[type[IntEnum], dict[str, str]] = {
    MapType: _g.MAP_TYPE_NAME,
    ProgType: _g.PROG_TYPE_NAME,
    AttachType: _g.ATTACH_TYPE_NAME,
    LinkType: _g.LINK_TYPE_NAME,
}

E = TypeVar("E", bound=IntEnum)


def c_name(member: IntEnum) -> str:
    """``MapType.HASH`` -> ``"BPF_MAP_TYPE_HASH"``; ``HelperId.map_lookup_elem`` -> ``"BPF_FUNC_map_lookup_elem"``."""
    return _PREFIX.get(type(member), "") + member.name.lstrip("_")


def bpftool_name(member: IntEnum) -> str:
    """bpftool's (libbpf's) short name: ``"hash"``, ``"sched_cls"``, ``"xdp"``; the lower-case
    enumerator name where libbpf has none; for helpers, ``bpf_<name>`` as in the verifier log."""
    if isinstance(member, HelperId):
        return helper_name(member)
    table = _NAMES.get(type(member))
    if table is not None and c_name(member) in table:
        return table[c_name(member)]
    return member.name.lower()


def from_bpftool_name(kind: type[E], name: str) -> E:
    """Inverse of :func:`bpftool_name`; also accepts the C name and the enum member name."""
    for member in kind:
        if name in (bpftool_name(member), c_name(member), member.name):
            return member
    raise KeyError(f"unknown {kind.__name__} {name!r}")


def helper_name(helper_id: int) -> str:
    """``1`` -> ``"bpf_map_lookup_elem"``: the name the verifier log and bpftool print.

    Unknown ids give ``"unknown"`` as the kernel's ``func_id_name`` does.
    """
    try:
        return "bpf_" + HelperId(helper_id).name
    except ValueError:
        return "unknown"

