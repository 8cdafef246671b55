"""What a subprogram's BTF prototype says about its arguments (``btf_prepare_func_args``).

A *global* function is verified once, on its own, for any arguments matching its prototype, and
every call site is then only checked against that prototype. The prototype comes from the
program's BTF: the FUNC named by the func_info record, its FUNC_PROTO, and ``arg:<tag>`` decl tags
(``__arg_ctx``, ``__arg_nonnull``, ``__arg_nullable``, ``__arg_trusted``, ``__arg_arena``).
Static functions go through the same classification but never fail loudly: an unsupported
prototype only makes their BTF "unreliable", as in the kernel.

This module only reads BTF and classifies; the walk applies the result (entry state of a global
function, argument checks at its call sites).
"""

from __future__ import annotations

import errno as E
from dataclasses import dataclass
from typing import Any

from pybpf.uapi import ProgType
from pybpf.verifier.log import Msg

__all__ = [
    "CTX_TYPE_NAMES",
    "FuncArgsError",
    "SubprogArg",
    "prepare_func_args",
    "returns_scalar",
]

MAX_BPF_FUNC_REG_ARGS = 5

# the canonical context type of each program type (the kernel's bpf_types.h): "" where the
# context is not a named struct (tracepoint's u64 array, tracing's void *)
CTX_TYPE_NAMES: dict[int, str] = {
    ProgType.SOCKET_FILTER: "__sk_buff",
    ProgType.SCHED_CLS: "__sk_buff",
    ProgType.SCHED_ACT: "__sk_buff",
    ProgType.XDP: "xdp_md",
    ProgType.CGROUP_SKB: "__sk_buff",
    ProgType.CGROUP_SOCK: "bpf_sock",
    ProgType.CGROUP_SOCK_ADDR: "bpf_sock_addr",
    ProgType.LWT_IN: "__sk_buff",
    ProgType.LWT_OUT: "__sk_buff",
    ProgType.LWT_XMIT: "__sk_buff",
    ProgType.LWT_SEG6LOCAL: "__sk_buff",
    ProgType.SOCK_OPS: "bpf_sock_ops",
    ProgType.SK_SKB: "__sk_buff",
    ProgType.SK_MSG: "sk_msg_md",
    ProgType.FLOW_DISSECTOR: "__sk_buff",
    ProgType.KPROBE: "pt_regs",  # bpf_user_pt_regs_t, a typedef of struct pt_regs on x86-64
    ProgType.TRACEPOINT: "",
    ProgType.PERF_EVENT: "bpf_perf_event_data",
    ProgType.RAW_TRACEPOINT: "bpf_raw_tracepoint_args",
    ProgType.RAW_TRACEPOINT_WRITABLE: "bpf_raw_tracepoint_args",
    ProgType.CGROUP_DEVICE: "bpf_cgroup_dev_ctx",
    ProgType.CGROUP_SYSCTL: "bpf_sysctl",
    ProgType.CGROUP_SOCKOPT: "bpf_sockopt",
    ProgType.SK_REUSEPORT: "sk_reuseport_md",
    ProgType.SK_LOOKUP: "bpf_sk_lookup",
}

_KIND_STR = ("UNKNOWN", "INT", "PTR", "ARRAY", "STRUCT", "UNION", "ENUM", "FWD", "TYPEDEF", "VOLATILE",
             "CONST", "RESTRICT", "FUNC", "FUNC_PROTO", "VAR", "DATASEC", "FLOAT", "DECL_TAG",
             "TYPE_TAG", "ENUM64")
_MODIFIERS = frozenset(("TYPEDEF", "VOLATILE", "CONST", "RESTRICT", "TYPE_TAG"))

TAG_CTX, TAG_TRUSTED, TAG_NONNULL, TAG_NULLABLE, TAG_ARENA = 1, 2, 4, 8, 16
_TAGS = {"ctx": TAG_CTX, "trusted": TAG_TRUSTED, "nonnull": TAG_NONNULL, "nullable": TAG_NULLABLE,
         "arena": TAG_ARENA}


@dataclass(frozen=True)
class SubprogArg:
    """One argument as the verifier treats it (``struct bpf_subprog_arg_info``).

    ``kind``: ``scalar`` (ARG_ANYTHING), ``ctx`` (ARG_PTR_TO_CTX), ``mem`` (ARG_PTR_TO_MEM of
    ``mem_size`` bytes, ``nullable`` unless tagged nonnull), ``dynptr`` (a read-only
    ``struct bpf_dynptr *``), ``btf_id`` (a trusted kernel object ``btf_struct``), ``arena``.
    """

    kind: str
    mem_size: int = 0
    nullable: bool = False
    btf_struct: str = ""


class FuncArgsError(Exception):
    """The prototype cannot be used. ``message`` is what the kernel logs, None when it is silent
    (a static function's prototype that merely is not understood)."""

    def __init__(self, errno: int, message: str | None) -> None:
        super().__init__(message or "")
        self.errno = errno
        self.message = message


def _kind(t: Any) -> str:
    k = int(getattr(t, "kind", 0))
    return _KIND_STR[k] if 0 <= k < len(_KIND_STR) else "UNKNOWN"


def _skip_modifiers(btf: Any, tid: int) -> tuple[int, Any]:
    t = btf.type_by_id(tid)
    for _ in range(32):
        if _kind(t) not in _MODIFIERS:
            break
        tid = t.type
        t = btf.type_by_id(tid)
    return tid, t


def returns_scalar(btf: Any, func_tid: int) -> bool:
    """Whether the FUNC returns an integer or enum (``btf_type_is_small_int || btf_is_any_enum``)."""
    try:
        proto = btf.type_by_id(btf.type_by_id(func_tid).type)
        _, t = _skip_modifiers(btf, proto.ret)
    except Exception:
        return False
    k = _kind(t)
    return (k == "INT" and t.size <= 8) or k in ("ENUM", "ENUM64")


def _arg_tags(btf: Any, func_tid: int, idx: int, is_global: bool) -> int:
    tags = 0
    for _tid, t in btf:
        if _kind(t) != "DECL_TAG" or t.type != func_tid or t.component_idx != idx:
            continue
        if not t.name.startswith("arg:"):
            continue
        if not is_global:
            raise FuncArgsError(E.EOPNOTSUPP, Msg.ARG_TYPE_TAG_IS_NOT_SUPPORTED.format(idx))
        bit = _TAGS.get(t.name[4:])
        if bit is None:
            raise FuncArgsError(E.EOPNOTSUPP, Msg.ARG_HAS_UNSUPPORTED_SET_OF_TAGS.format(idx))
        tags |= bit
    return tags


def _is_prog_ctx_type(btf: Any, ptr: Any, prog_type: int) -> bool:
    """``btf_is_prog_ctx_type``: the pointee is the program type's context struct (by name)."""
    tid = ptr.type
    t = btf.type_by_id(tid)
    if prog_type == ProgType.KPROBE:
        while _kind(t) in _MODIFIERS and _kind(t) != "TYPEDEF":
            t = btf.type_by_id(t.type)
        if _kind(t) == "TYPEDEF" and t.name == "bpf_user_pt_regs_t":
            return True
    _, t = _skip_modifiers(btf, tid)
    if _kind(t) != "STRUCT" or not t.name:
        return False
    want = CTX_TYPE_NAMES.get(prog_type, "")
    if not want:
        return False
    if (want, t.name) in (("__sk_buff", "sk_buff"), ("xdp_md", "xdp_buff")):
        return True
    return bool(want == t.name)


def _validate_ctx_tag(btf: Any, ptr: Any, idx: int, prog_type: int) -> None:
    """``btf_validate_prog_ctx_type`` for an ``__arg_ctx`` argument."""
    t = btf.type_by_id(ptr.type)
    if prog_type in (ProgType.KPROBE, ProgType.PERF_EVENT):
        while _kind(t) in _MODIFIERS and _kind(t) != "TYPEDEF":
            t = btf.type_by_id(t.type)
        if _kind(t) == "TYPEDEF" and t.name == "bpf_user_pt_regs_t":
            return
    _, t = _skip_modifiers(btf, ptr.type)
    if _kind(t) == "UNKNOWN":  # void *ctx __arg_ctx
        return
    if not t.name:
        raise FuncArgsError(E.EINVAL, Msg.ARG_TYPE_DOESN_T_HAVE_A.format(idx))
    k = _kind(t)
    if prog_type in (ProgType.KPROBE, ProgType.PERF_EVENT) and k == "STRUCT" and t.name == "pt_regs":
        return
    if prog_type in (ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE) and k == "INT" and t.size == 8:
        return
    if prog_type in (ProgType.TRACEPOINT, ProgType.SYSCALL, ProgType.EXT):
        return
    want = CTX_TYPE_NAMES.get(prog_type, "")
    if not want:
        raise FuncArgsError(E.EINVAL, Msg.ARG_SHOULD_BE_VOID_POINTER.format(idx))
    if k != "STRUCT" or t.name != want:
        raise FuncArgsError(E.EINVAL, Msg.ARG_SHOULD_BE_STRUCT.format(idx, want))


def _is_dynptr_ptr(btf: Any, ptr: Any) -> bool:
    _, t = _skip_modifiers(btf, ptr.type)
    k = _kind(t)
    if k == "STRUCT" or (k == "FWD" and not getattr(t, "is_union", False)):
        return bool(t.name == "bpf_dynptr")
    return False


def prepare_func_args(btf: Any, func_tid: int, *, name: str, is_global: bool, prog_type: int) -> list[SubprogArg]:
    """Classify the arguments of the FUNC ``func_tid``; raises :class:`FuncArgsError`."""
    try:
        fn = btf.type_by_id(func_tid)
    except Exception:
        fn = None
    if fn is None or _kind(fn) != "FUNC":
        raise FuncArgsError(E.EFAULT, Msg.BTF_OF_FUNC_DOESN_T_POINT)
    try:
        proto = btf.type_by_id(fn.type)
    except Exception:
        proto = None
    if proto is None or _kind(proto) != "FUNC_PROTO":
        raise FuncArgsError(E.EFAULT, Msg.INVALID_TYPE_OF_FUNCTION.format(name))
    params = proto.params
    if len(params) > MAX_BPF_FUNC_REG_ARGS:
        raise FuncArgsError(E.EINVAL, Msg.GLOBAL_FUNC_TOO_MANY_ARGS.format(name, len(params), MAX_BPF_FUNC_REG_ARGS)
                            if is_global else None)
    if not returns_scalar(btf, func_tid):
        _, rt = _skip_modifiers(btf, proto.ret)
        if not (_kind(rt) == "INT" or _kind(rt) in ("ENUM", "ENUM64")):
            raise FuncArgsError(E.EINVAL, Msg.GLOBAL_FUNC_NOT_SCALAR_RETURN.format(name) if is_global else None)
    out: list[SubprogArg] = []
    for i, param in enumerate(params):
        tags = _arg_tags(btf, func_tid, i, is_global)
        _, t = _skip_modifiers(btf, param.type)
        if _kind(t) == "PTR":
            arg = _pointer_arg(btf, t, i, tags, is_global, prog_type)
            if arg is not None:
                out.append(arg)
                continue
        if tags:
            raise FuncArgsError(E.EINVAL, Msg.ARG_HAS_POINTER_TAG_BUT_IS.format(i))
        if _kind(t) in ("INT", "ENUM", "ENUM64"):
            out.append(SubprogArg("scalar"))
            continue
        raise FuncArgsError(E.EINVAL, Msg.ARG_TYPE_NOT_SUPPORTED.format(i, _kind(t), name) if is_global else None)
    return out


def _pointer_arg(btf: Any, t: Any, i: int, tags: int, is_global: bool, prog_type: int) -> SubprogArg | None:
    """A pointer argument's class, or None to fall through to the non-pointer rules."""
    if tags & TAG_CTX or _is_prog_ctx_type(btf, t, prog_type):
        if tags & ~TAG_CTX:
            raise FuncArgsError(E.EINVAL, Msg.ARG_HAS_INVALID_COMBINATION_OF_TAGS.format(i))
        if tags & TAG_CTX:
            _validate_ctx_tag(btf, t, i, prog_type)
        return SubprogArg("ctx")
    if _is_dynptr_ptr(btf, t):
        if tags:
            raise FuncArgsError(E.EINVAL, Msg.ARG_HAS_INVALID_COMBINATION_OF_TAGS.format(i))
        return SubprogArg("dynptr")
    if tags & TAG_TRUSTED:
        if tags & TAG_NONNULL:
            raise FuncArgsError(E.EINVAL, Msg.ARG_HAS_INVALID_COMBINATION_OF_TAGS.format(i))
        _, pt = _skip_modifiers(btf, t.type)
        # the kernel type is found as a CO-RE candidate: "task_struct___local" is a task_struct
        kname = pt.name.split("___", 1)[0] if "___" in pt.name else pt.name
        return SubprogArg("btf_id", nullable=bool(tags & TAG_NULLABLE), btf_struct=kname)
    if tags & TAG_ARENA:
        if tags & ~TAG_ARENA:
            raise FuncArgsError(E.EINVAL, Msg.ARG_ARENA_CANNOT_BE_COMBINED_WITH.format(i))
        return SubprogArg("arena")
    if not is_global:
        return None
    if tags & TAG_NULLABLE:
        raise FuncArgsError(E.EINVAL, Msg.ARG_HAS_INVALID_COMBINATION_OF_TAGS.format(i))
    ref_tid, ref = _skip_modifiers(btf, t.type)
    try:
        size = btf.resolve_size(ref_tid) if ref_tid else None
    except Exception:
        size = None
    if size is None or _kind(ref) in ("FWD", "FUNC", "FUNC_PROTO", "UNKNOWN"):
        raise FuncArgsError(E.EINVAL, Msg.ARG_REFERENCE_TYPE_SIZE_CANNOT_BE.format(i, _kind(ref), getattr(ref,
                                                                                   'name', ''), E.EINVAL))
    return SubprogArg("mem", mem_size=size, nullable=not tags & TAG_NONNULL)
