"""Application-defined program types: pybpf as an embeddable, verified sandbox."""

from __future__ import annotations

import ctypes
import errno
import platform
from collections.abc import Iterator

import pytest

from pybpf.errors import VerifierError
from pybpf.isa import Insn, Insns
from pybpf.isa.asm import assemble
from pybpf.kernel import Kernel
from pybpf.kernel.custom import CUSTOM_HELPER_BASE, Helper, define_program_type, remove_program_type
from pybpf.kernel.prog_load import LoadAttrs, prog_load
from pybpf.kernel.test_run import test_run
from pybpf.progtypes import ArgType, ProgTypeDescriptor


class Event(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_uint32), ("value", ctypes.c_uint32), ("verdict", ctypes.c_uint32)]


CLAMP = CUSTOM_HELPER_BASE
calls: list[tuple[int, int]] = []


def clamp(ctx: object, r1: int, r2: int, *_: int) -> int:
    calls.append((r1, r2))
    return min(r1, r2)


@pytest.fixture
def event_type() -> Iterator[ProgTypeDescriptor]:
    desc = define_program_type(
        "event_filter", Event, access={"verdict": "rw"},
        helpers={CLAMP: Helper(clamp, args=(ArgType.ARG_ANYTHING, ArgType.ARG_ANYTHING))},
        return_range=(0, 1),
    )
    try:
        yield desc
    finally:
        remove_program_type(desc.prog_type)


def _asm(text: str) -> Insns:
    """Kernel-dialect assembly where ``call helper#N`` may name an application helper id."""
    out = []
    for line in text.strip().splitlines():
        line = line.strip()
        if line.startswith("call helper#"):
            out.append(Insn(0x85, imm=int(line.split("#")[1])))
        else:
            out.extend(assemble(line))
    return Insns(out)


def _load(kernel: Kernel, desc: ProgTypeDescriptor, text: str):
    return prog_load(kernel, LoadAttrs(desc.prog_type, _asm(text), name="filt", log_level=1)).program


PROG = f"""
    r6 = r1
    r1 = *(u32 *)(r6 +4)
    r2 = 100
    call helper#{CLAMP}
    *(u32 *)(r6 +8) = r0
    r0 = 1
    exit
"""


@pytest.mark.parametrize("engine", ["interpreter"] + (["jit"] if platform.machine() in ("x86_64", "AMD64") else []))
def test_custom_type_loads_verifies_and_runs(kernel: Kernel, event_type: ProgTypeDescriptor, engine: str) -> None:
    prog = _load(kernel, event_type, PROG)
    assert prog.type_name() == "event_filter"
    calls.clear()
    res = test_run(kernel, prog, ctx_in=bytes(Event(1, 250, 0)), engine=engine)
    assert res.retval == 1
    out = Event.from_buffer_copy(res.ctx_out or b"")
    assert (out.kind, out.value, out.verdict) == (1, 250, 100)
    assert calls == [(250, 100)]


def test_custom_type_rules_are_enforced_by_the_verifier(kernel: Kernel, event_type: ProgTypeDescriptor) -> None:
    with pytest.raises(VerifierError) as e:
        _load(kernel, event_type, "r0 = 0\n*(u32 *)(r1 +0) = r0\nexit")  # 'kind' is read-only
    assert e.value.errno == errno.EACCES
    with pytest.raises(VerifierError):
        _load(kernel, event_type, "r0 = 5\nexit")  # outside the return range [0, 1]


def test_custom_type_user_data_reaches_helpers(kernel: Kernel) -> None:
    seen: list[object] = []

    def probe(ctx, *_: int) -> int:  # type: ignore[no-untyped-def]
        seen.append(ctx.env.user)
        return 0

    desc = define_program_type("probe_type", Event, helpers={CLAMP + 1: Helper(probe)}, base_helpers=None)
    try:
        prog = _load(kernel, desc, f"call helper#{CLAMP + 1}\nr0 = 0\nexit")
        test_run(kernel, prog, ctx_in=bytes(Event()), user={"tenant": 7})
        assert seen == [{"tenant": 7}]
    finally:
        remove_program_type(desc.prog_type)
