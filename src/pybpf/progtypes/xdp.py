"""XDP: ``struct xdp_md`` and its runtime ``xdp_buff``.

Access rules: ``xdp_is_valid_access`` / ``__is_valid_xdp_access`` (``net/core/filter.c``): 4-byte
aligned reads of whole fields only (no narrow loads), no writes (offloaded programs aside),
``egress_ifindex`` only for ``BPF_XDP_DEVMAP`` programs, no sign-extending loads of the pointers.

Runtime layout (``XDP_RUNTIME``): the kernel's ``struct xdp_buff`` for the three pointers
(``data`` at 0, ``data_end`` at 8, ``data_meta`` at 16, ``data_hard_start`` at 24), so that
``prog dump xlated`` shows the kernel's offsets for packet pointers; then the values the kernel
reaches through ``rxq``/``txq`` pointers, flattened into ``u32`` fields (one load instead of
two or three).
"""

from __future__ import annotations

from pybpf.progtypes.context import (
    AccessAux,
    CtxField,
    CtxMapping,
    CtxStruct,
    ProgInfo,
    ProgTypeDescriptor,
    RuntimeLayout,
)
from pybpf.progtypes.protos import func_proto_switch
from pybpf.progtypes.types import AccessType, RegType
from pybpf.uapi import AttachType, ProgType

__all__ = ["XDP", "XDP_MD", "XDP_RUNTIME", "xdp_is_valid_access"]

XDP_MD = CtxStruct(
    "xdp_md",
    24,
    tuple(
        CtxField(name, 4 * i, 4)
        for i, name in enumerate(
            ("data", "data_end", "data_meta", "ingress_ifindex", "rx_queue_index", "egress_ifindex")
        )
    ),
)
"""``struct xdp_md`` (24 bytes)."""

XDP_RUNTIME = RuntimeLayout.build(
    "xdp_buff",
    [("data", 8), ("data_end", 8), ("data_meta", 8), ("data_hard_start", 8), ("ingress_ifindex", 4),
     ("rx_queue_index", 4), ("egress_ifindex", 4), ("frame_sz", 4)],
)
"""The runtime XDP context (48 bytes); see the module docstring."""

_OFF = {f.name: f.offset for f in XDP_MD.fields}


def _is_valid_xdp_access(off: int, size: int) -> bool:
    return 0 <= off < XDP_MD.size and off % size == 0 and size == 4


def xdp_is_valid_access(off: int, size: int, type: AccessType, prog: ProgInfo, aux: AccessAux) -> bool:
    if prog.expected_attach_type != AttachType.XDP_DEVMAP and off == _OFF["egress_ifindex"]:
        return False
    if type == AccessType.WRITE:
        if prog.offloaded and off == _OFF["rx_queue_index"]:
            return _is_valid_xdp_access(off, size)
        return False
    if off in (_OFF["data_meta"], _OFF["data"], _OFF["data_end"]) and aux.is_ldsx:
        return False
    if off == _OFF["data"]:
        aux.reg_type = RegType.PTR_TO_PACKET
    elif off == _OFF["data_meta"]:
        aux.reg_type = RegType.PTR_TO_PACKET_META
    elif off == _OFF["data_end"]:
        aux.reg_type = RegType.PTR_TO_PACKET_END
    return _is_valid_xdp_access(off, size)


XDP = ProgTypeDescriptor(
    prog_type=int(ProgType.XDP),
    name="xdp",
    ctx=XDP_MD,
    runtime=XDP_RUNTIME,
    is_valid_access=xdp_is_valid_access,
    func_proto=func_proto_switch("xdp_func_proto"),
    ctx_map={n: CtxMapping(n) for n in _OFF},
    packet_access="rw",
    has_ctx_out=True,
    test_run="xdp",
    ctx_btf_name="xdp_md",
)
