"""Per-program-type contracts: contexts, access rules, context conversion, helpers, return ranges.

The kernel-side tables the verifier checks against and the kernel layer runs with (pybpf's
``bpf_verifier_ops`` + ``bpf_func_proto``). See docs/architecture.md, "progtypes: contexts".

    >>> from pybpf.progtypes import descriptor
    >>> from pybpf.uapi import ProgType
    >>> xdp = descriptor(ProgType.XDP)
    >>> xdp.runtime["data_end"].offset, xdp.runtime["data_end"].size
    (8, 8)

Application-defined program types: build a descriptor with
:meth:`ProgTypeDescriptor.custom` and :func:`register` it under an id >= :data:`CUSTOM_PROG_TYPE_BASE`.
"""

from __future__ import annotations

from pybpf.errors import BpfError
from pybpf.progtypes.context import (
    PRIVILEGED,
    UNPRIVILEGED,
    AccessAux,
    CtxField,
    CtxMapping,
    CtxStruct,
    ProgInfo,
    ProgTypeDescriptor,
    RetvalRange,
    RuntimeField,
    RuntimeLayout,
)
from pybpf.progtypes.protos import CAP_BPF, CAP_PERFMON, FuncProtoSwitch, HelperProto, func_proto_switch, proto_by_name
from pybpf.progtypes.skb import (
    CGROUP_SKB,
    LWT_IN,
    LWT_OUT,
    LWT_XMIT,
    SCHED_ACT,
    SCHED_CLS,
    SK_BUFF,
    SKB_RUNTIME,
    SOCKET_FILTER,
)
from pybpf.progtypes.tracing import KPROBE, PERF_EVENT, PT_REGS, RAW_TRACEPOINT, RAW_TRACEPOINT_WRITABLE, TRACEPOINT
from pybpf.progtypes.types import AccessType, ArgType, RegType, RetType, TypeFlag
from pybpf.progtypes.xdp import XDP, XDP_MD, XDP_RUNTIME

__all__ = [
    "CAP_BPF",
    "CAP_PERFMON",
    "CUSTOM_PROG_TYPE_BASE",
    "PRIVILEGED",
    "PT_REGS",
    "SKB_RUNTIME",
    "SK_BUFF",
    "UNPRIVILEGED",
    "XDP_MD",
    "XDP_RUNTIME",
    "AccessAux",
    "AccessType",
    "ArgType",
    "CtxField",
    "CtxMapping",
    "CtxStruct",
    "FuncProtoSwitch",
    "HelperProto",
    "ProgInfo",
    "ProgTypeDescriptor",
    "RegType",
    "RetType",
    "RetvalRange",
    "RuntimeField",
    "RuntimeLayout",
    "TypeFlag",
    "descriptor",
    "descriptors",
    "func_proto_switch",
    "proto_by_name",
    "register",
    "unregister",
]

CUSTOM_PROG_TYPE_BASE = 0x1000
"""Application-defined program types take ids from here up (the kernel's stop at ~32)."""

_REGISTRY: dict[int, ProgTypeDescriptor] = {
    d.prog_type: d
    for d in (SOCKET_FILTER, SCHED_CLS, SCHED_ACT, CGROUP_SKB, XDP, KPROBE, TRACEPOINT, RAW_TRACEPOINT,
              PERF_EVENT, LWT_IN, LWT_OUT, LWT_XMIT, RAW_TRACEPOINT_WRITABLE)
}


def descriptor(prog_type: int) -> ProgTypeDescriptor:
    """The descriptor of ``prog_type``; ``BpfError(EINVAL)`` for a type pybpf does not model
    (PROG_LOAD's answer for an unknown type)."""
    try:
        return _REGISTRY[int(prog_type)]
    except KeyError:
        import errno

        raise BpfError(errno.EINVAL, f"program type {int(prog_type)} is not supported") from None


def descriptors() -> dict[int, ProgTypeDescriptor]:
    """Every registered program type (kernel ones and application-defined)."""
    return dict(_REGISTRY)


def register(desc: ProgTypeDescriptor) -> None:
    """Make an application-defined program type loadable. Its id must be >= CUSTOM_PROG_TYPE_BASE
    and not taken."""
    import errno

    if desc.prog_type < CUSTOM_PROG_TYPE_BASE:
        raise BpfError(errno.EINVAL, f"custom program types need an id >= {CUSTOM_PROG_TYPE_BASE:#x}")
    if desc.prog_type in _REGISTRY:
        raise BpfError(errno.EEXIST, f"program type {desc.prog_type:#x} is already registered")
    _REGISTRY[desc.prog_type] = desc


def unregister(prog_type: int) -> None:
    """Remove an application-defined program type (kernel types cannot be removed)."""
    if prog_type >= CUSTOM_PROG_TYPE_BASE:
        _REGISTRY.pop(prog_type, None)
