"""Application-defined program types: pybpf as an embeddable, verified sandbox.

An application describes its own hook — the context struct programs receive, the helpers they may
call (Python callables with kernel-style prototypes), the return values allowed — and then loads,
verifies and runs programs of that type like any other::

    import ctypes
    from pybpf.kernel.custom import Helper, define_program_type
    from pybpf.progtypes import ArgType, RetType

    class Event(ctypes.Structure):
        _fields_ = [("kind", ctypes.c_uint32), ("value", ctypes.c_uint32), ("verdict", ctypes.c_uint32)]

    def clamp(ctx, r1, r2, *_):          # the vm's helper signature
        return min(r1, r2)

    ptype = define_program_type(
        "event_filter", Event,
        access={"verdict": "rw"},        # other fields read-only
        helpers={0x8000: Helper(clamp, args=(ArgType.ARG_ANYTHING, ArgType.ARG_ANYTHING))},
        return_range=(0, 1),
    )
    # ptype.prog_type is the id to load programs with (PROG_LOAD prog_type).

The descriptor itself is progtypes' (:meth:`pybpf.progtypes.ProgTypeDescriptor.custom`); this
module owns turning Python callables into helper prototypes and the kernel-side registry engines
consult for the implementations (:func:`custom_helpers`).
"""

from __future__ import annotations

import ctypes
import errno
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pybpf.errors import BpfError
from pybpf.progtypes import (
    CUSTOM_PROG_TYPE_BASE,
    ArgType,
    CtxField,
    CtxStruct,
    HelperProto,
    ProgTypeDescriptor,
    RetType,
    RetvalRange,
    func_proto_switch,
    register,
    unregister,
)
from pybpf.progtypes import descriptors as _descriptors
from pybpf.uapi import HelperId

__all__ = ["CUSTOM_HELPER_BASE", "Helper", "custom_helpers", "define_program_type", "remove_program_type"]

CUSTOM_HELPER_BASE = 0x8000
"""Helper ids an application may use: [0x8000, 0x10000) (kernel ids stay below, internal above)."""

_lock = threading.Lock()
_impls: dict[int, dict[int, Callable[..., Any]]] = {}


@dataclass(frozen=True)
class Helper:
    """A Python helper and its prototype (the kernel's ``bpf_func_proto``).

    ``fn(ctx, r1, r2, r3, r4, r5) -> int`` — ``ctx`` is the vm's helper context (``ctx.read``,
    ``ctx.write``, ``ctx.env.user`` for the application's own data). ``args`` are ``ArgType`` values
    (with ``TypeFlag`` bits) the verifier checks each call against; ``ret`` the return type.
    """

    fn: Callable[..., Any]
    args: tuple[int, ...] = ()
    ret: int = RetType.RET_INTEGER
    name: str = ""
    gpl_only: bool = False


def _ctx_struct(ctx: CtxStruct | type[ctypes.Structure], access: Mapping[str, str]) -> CtxStruct:
    if isinstance(ctx, CtxStruct):
        return ctx
    if not (isinstance(ctx, type) and issubclass(ctx, ctypes.Structure)):
        raise TypeError("ctx must be a CtxStruct or a ctypes.Structure subclass")
    fields = []
    for fname, ftype, *_bits in ctx._fields_:
        desc = getattr(ctx, fname)
        size = ctypes.sizeof(ftype)
        count = 1
        base = ftype
        if issubclass(ftype, ctypes.Array):
            count = ftype._length_
            base = ftype._type_
            size = ctypes.sizeof(base)
        fields.append(CtxField(fname, desc.offset, size, count, access=access.get(fname, "r")))
    unknown = set(access) - {f.name for f in fields}
    if unknown:
        raise ValueError(f"access given for unknown fields: {', '.join(sorted(unknown))}")
    return CtxStruct(ctx.__name__, ctypes.sizeof(ctx), tuple(fields))


def define_program_type(
    name: str,
    ctx: CtxStruct | type[ctypes.Structure],
    *,
    helpers: Mapping[int, Helper] | None = None,
    return_range: tuple[int, int] | None = None,
    access: Mapping[str, str] | None = None,
    base_helpers: str | None = "bpf_base_func_proto",
    prog_type: int | None = None,
) -> ProgTypeDescriptor:
    """Register a program type (see the module docstring) and return its descriptor.

    ``helpers`` maps helper ids in ``[CUSTOM_HELPER_BASE, 0x10000)`` — or kernel helper ids, to
    replace a kernel helper's implementation for this type — to :class:`Helper`; ``base_helpers``
    names a kernel ``*_func_proto`` switch whose helpers the type may also call (default: the
    map/time/random basics), ``None`` for none. ``prog_type`` defaults to the next free id from
    :data:`~pybpf.progtypes.CUSTOM_PROG_TYPE_BASE`.
    """
    cs = _ctx_struct(ctx, access or {})
    protos: dict[int, HelperProto] = {}
    impls: dict[int, Callable[..., Any]] = {}
    for hid, h in (helpers or {}).items():
        if not (0 < hid < 0x10000):
            raise BpfError(errno.EINVAL, f"helper id {hid:#x} outside [1, 0x10000)")
        if hid < CUSTOM_HELPER_BASE and hid not in HelperId._value2member_map_:
            raise BpfError(errno.EINVAL, f"helper id {hid:#x}: use ids from {CUSTOM_HELPER_BASE:#x}")
        if len(h.args) > 5:
            raise BpfError(errno.EINVAL, "a helper takes at most 5 arguments")
        hname = h.name or getattr(h.fn, "__name__", f"helper_{hid:x}")
        arg_types = tuple(int(a) for a in h.args) + (ArgType.ARG_DONTCARE,) * (5 - len(h.args))
        protos[hid] = HelperProto(name=f"bpf_{hname}_proto", func=f"bpf_{hname}", ret_type=int(h.ret),
                                  arg_types=arg_types, gpl_only=h.gpl_only, callable=h.fn)  # type: ignore[arg-type]
        impls[hid] = h.fn
    with _lock:
        if prog_type is None:
            taken = set(_descriptors())
            prog_type = CUSTOM_PROG_TYPE_BASE
            while prog_type in taken:
                prog_type += 1
        rr = RetvalRange(*return_range) if return_range is not None else None
        desc = ProgTypeDescriptor.custom(
            prog_type, name, cs, helpers=protos, return_range=rr,
            base_helpers=func_proto_switch(base_helpers) if base_helpers else None,
        )
        register(desc)
        _impls[prog_type] = impls
    return desc


def remove_program_type(prog_type: int) -> None:
    """Unregister an application-defined program type."""
    with _lock:
        unregister(prog_type)
        _impls.pop(prog_type, None)


def custom_helpers(prog_type: int) -> dict[int, Callable[..., Any]]:
    """The Python implementations of ``prog_type``'s own helpers (empty for kernel types)."""
    return dict(_impls.get(prog_type, {}))
