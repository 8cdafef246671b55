"""Unprivileged loads: the Spectre v1 pointer-arithmetic rules (``sanitize_ptr_alu``), the
speculative paths, the 4096-instruction cap and the tail-call map rule."""

from __future__ import annotations

import errno

import pytest

from pybpf.errors import VerifierError
from pybpf.isa.asm import assemble
from pybpf.uapi import MapType
from pybpf.verifier import verify
from pybpf.verifier.specmaps import SpecMap

ARR = SpecMap(4, "arr", MapType.ARRAY, 4, 48, 1)
HASH = SpecMap(5, "h", MapType.HASH, 8, 16, 1)

# look an element up (r0 = value or NULL), then branch on its first byte
LOOKUP = ("r1 = 0\n*(u64 *)(r10 -8) = r1\nr2 = r10\nr2 += -8\nr1 = map[id:{m}]\n"
          "call bpf_map_lookup_elem\nif r0 == 0x0 goto pc+{skip}\n")


def unpriv(text: str, **kw: object) -> VerifierError:
    with pytest.raises(VerifierError) as e:
        verify(assemble(text), unprivileged=True, log_level=1, **kw)  # type: ignore[arg-type]
    return e.value


def test_pointer_on_the_wrong_side_names_the_pointer_register() -> None:
    text = "r0 = 1\nr0 -= r1\nexit"
    # privileged: subtracting a pointer from a scalar; unprivileged: refused earlier, naming R1
    with pytest.raises(VerifierError) as e:
        verify(assemble(text))
    assert e.value.message == "R0 tried to subtract pointer from scalar"
    assert unpriv(text).message == ("R1 has pointer with unsupported alu operation, pointer arithmetic with it "
                                    "prohibited for !root")


def test_one_instruction_must_not_need_two_masks() -> None:
    # two paths reach "r1 += r0" with offsets of different ranges: no single run-time mask fits
    body = ("r4 = *(u8 *)(r0 +0)\nif r4 == 0x1 goto pc+4\n"
            "r1 = 6\nr1 = -r1\nr1 &= 7\ngoto pc+3\n"
            "r1 = 6\nr1 = -r1\nr1 &= 3\n"
            "r1 += r0\nr0 = *(u8 *)(r1 +0)\n"
            "r0 = 1\nexit")
    text = LOOKUP.format(m=4, skip=11) + body
    v = verify(assemble(text), maps={4: ARR})  # privileged: fine
    assert v.insns
    e = unpriv(text, maps={4: ARR})
    assert e.message == ("R1 tried to add from different maps, paths or scalars, pointer arithmetic with it "
                         "prohibited for !root")


def test_mixed_sign_offset_is_refused() -> None:
    body = "r1 = *(u8 *)(r0 +0)\nr1 -= 4\nr0 += r1\nr0 = 1\nexit"
    e = unpriv(LOOKUP.format(m=4, skip=4) + body, maps={4: ARR})
    assert e.message == ("R1 has unknown scalar with mixed signed bounds, pointer arithmetic with it prohibited "
                         "for !root")


def test_unprivileged_programs_are_capped_at_4096_instructions() -> None:
    text = "r0 = 0\n" + "r0 += 1\n" * 4096 + "exit"
    assert verify(assemble(text)).insns
    e = unpriv(text)
    assert e.errno == errno.E2BIG


def test_tail_call_site_through_two_prog_arrays() -> None:
    pa = SpecMap(6, "pa", MapType.PROG_ARRAY, 4, 4, 4)
    pb = SpecMap(7, "pb", MapType.PROG_ARRAY, 4, 4, 4)
    text = ("r6 = r1\nr0 = *(u32 *)(r1 +0)\nr2 = map[id:6]\nif r0 == 0x1 goto pc+2\nr2 = map[id:7]\n"
            "r1 = r6\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit")
    assert verify(assemble(text), maps={6: pa, 7: pb}).insns
    e = unpriv(text, maps={6: pa, 7: pb})
    assert e.message == "tail_call abusing map_ptr"
