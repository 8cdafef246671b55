"""CO-RE relocation against hand-built local and target BTF (libbpf's relo_core rules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpf.btf import (
    BtfSpec,
    CoreRelo,
    Enum,
    EnumValue,
    Int,
    IntEncoding,
    Member,
    Ptr,
    Struct,
    Typedef,
    Void,
)
from pybpf.btf.core import POISON_IMM, calc_relo_insn, find_candidates, patch_insn
from pybpf.errors import BtfError
from pybpf.isa import Insn
from pybpf.uapi import CoreReloKind as K

INT = Int("int", 4, IntEncoding.SIGNED, 0, 32)
U8 = Int("unsigned char", 1, IntEncoding.NONE, 0, 8)
U64 = Int("unsigned long", 8, IntEncoding.NONE, 0, 64)


def local() -> BtfSpec:
    return BtfSpec.from_types(
        [
            Void(),
            INT,  # 1
            Struct("task___local", 8, (Member("pid", 1, 0), Member("tgid", 1, 32))),  # 2
            Enum("state", 4, (EnumValue("RUNNING", 0), EnumValue("SLEEPING", 1))),  # 3
            Struct("bf", 4, (Member("lo", 1, 0, 3), Member("hi", 1, 3, 9)), True),  # 4
            Struct("gone", 4, (Member("x", 1, 0),)),  # 5
            Struct("", 4, (Member("y", 1, 0),)),  # 6 anonymous
            Struct("arr", 16, (Member("n", 1, 0), Member("v", 9, 32))),  # 7
            Typedef("int_t", 1),  # 8
            Int("int", 4, IntEncoding.SIGNED, 0, 32),  # 9 (array elements via typedef chain below)
        ]
    )


def target() -> BtfSpec:
    return BtfSpec.from_types(
        [
            Void(),
            INT,  # 1
            U64,  # 2
            Struct("task", 40, (Member("state", 2, 0), Member("", 4, 64), Member("pid", 1, 256))),  # 3
            Struct("", 16, (Member("tgid", 1, 0), Member("flags", 2, 64))),  # 4 embedded anonymous
            Enum("state", 4, (EnumValue("SLEEPING", 7), EnumValue("RUNNING", 9))),  # 5
            Struct("bf", 8, (Member("pad", 1, 0, 20), Member("hi", 1, 20, 9), Member("lo", 1, 29, 3)), True),  # 6
        ]
    )


def relo(type_id: int, access: str, kind: K) -> CoreRelo:
    return CoreRelo(0, type_id, 0, access, kind)


def test_field_offset_moves_with_the_target_layout() -> None:
    res = calc_relo_insn(local(), relo(2, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET), target())
    assert (res.orig_val, res.new_val, res.poison) == (0, 32, False)
    # tgid lives in an anonymous struct in the target: found through it
    res = calc_relo_insn(local(), relo(2, "0:1", K.BPF_CORE_FIELD_BYTE_OFFSET), target())
    assert (res.orig_val, res.new_val) == (4, 8)


def test_field_exists_size_and_missing_type() -> None:
    res = calc_relo_insn(local(), relo(2, "0:1", K.BPF_CORE_FIELD_EXISTS), target())
    assert (res.orig_val, res.new_val) == (1, 1)
    res = calc_relo_insn(local(), relo(5, "0:0", K.BPF_CORE_FIELD_EXISTS), target())
    assert res.new_val == 0 and not res.poison
    res = calc_relo_insn(local(), relo(5, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET), target())
    assert res.poison
    res = calc_relo_insn(local(), relo(2, "0:0", K.BPF_CORE_FIELD_BYTE_SIZE), target())
    assert (res.orig_val, res.new_val) == (4, 4)


def test_type_relocations() -> None:
    res = calc_relo_insn(local(), relo(2, "0", K.BPF_CORE_TYPE_SIZE), target())
    assert (res.orig_val, res.new_val) == (8, 40)
    res = calc_relo_insn(local(), relo(2, "0", K.BPF_CORE_TYPE_EXISTS), target())
    assert res.new_val == 1
    res = calc_relo_insn(local(), relo(5, "0", K.BPF_CORE_TYPE_EXISTS), target())
    assert res.new_val == 0
    res = calc_relo_insn(local(), relo(2, "0", K.BPF_CORE_TYPE_ID_TARGET), target())
    assert res.new_val == 3 and not res.validate
    res = calc_relo_insn(local(), relo(2, "0", K.BPF_CORE_TYPE_ID_LOCAL), target())
    assert res.new_val == 2


def test_enum_value_relocations() -> None:
    res = calc_relo_insn(local(), relo(3, "1", K.BPF_CORE_ENUMVAL_VALUE), target())
    assert (res.orig_val, res.new_val) == (1, 7)
    res = calc_relo_insn(local(), relo(3, "0", K.BPF_CORE_ENUMVAL_EXISTS), target())
    assert res.new_val == 1


def test_bitfield_shifts() -> None:
    res = calc_relo_insn(local(), relo(4, "0:1", K.BPF_CORE_FIELD_LSHIFT_U64), target())
    # target: hi is 9 bits at bit 20 of a 4-byte load -> lshift = 64 - (20 + 9)
    assert res.new_val == 64 - 29
    res = calc_relo_insn(local(), relo(4, "0:1", K.BPF_CORE_FIELD_RSHIFT_U64), target())
    assert (res.orig_val, res.new_val) == (64 - 9, 64 - 9)
    res = calc_relo_insn(local(), relo(4, "0:1", K.BPF_CORE_FIELD_SIGNED), target())
    assert res.new_val == 1


def test_ambiguous_candidates_are_refused() -> None:
    twin = BtfSpec.from_types(
        [
            Void(),
            INT,
            Struct("task", 8, (Member("pid", 1, 0),)),
            Struct("task___b", 8, (Member("x", 1, 0), Member("pid", 1, 32))),
        ]
    )
    with pytest.raises(BtfError, match="ambiguity"):
        calc_relo_insn(local(), relo(2, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET), twin)
    # without flavored candidates (the local-BTF-as-target case) there is one answer
    res = calc_relo_insn(local(), relo(2, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET), twin, exact_names=True)
    assert res.new_val == 0
    assert find_candidates(local(), 2, twin) == [2, 3]
    assert find_candidates(local(), 2, twin, exact_names=True) == [2]


def test_bad_access_strings_and_anonymous_types() -> None:
    with pytest.raises(BtfError, match="parsing"):
        calc_relo_insn(local(), relo(2, "0:9", K.BPF_CORE_FIELD_BYTE_OFFSET), target())
    with pytest.raises(BtfError, match="parsing"):
        calc_relo_insn(local(), relo(2, ":", K.BPF_CORE_FIELD_BYTE_OFFSET), target())
    with pytest.raises(BtfError, match="anonymous types"):
        calc_relo_insn(local(), relo(6, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET), target())


def test_patch_instructions() -> None:
    res = calc_relo_insn(local(), relo(2, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET), target())
    ldx = Insn(0x61, 1, 2, 0, 0)  # r1 = *(u32 *)(r2 + 0)
    (out,) = patch_insn(ldx, res)
    assert out.off == 32 and out.code == 0x61
    add = Insn(0x07, 1, 0, 0, 0)  # r1 += 0
    (out,) = patch_insn(add, res)
    assert out.imm == 32
    with pytest.raises(BtfError, match="unexpected insn"):
        patch_insn(Insn(0x07, 1, 0, 0, 99), res)  # the compiled value is not the local one
    poisoned = calc_relo_insn(local(), relo(5, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET), target())
    out2 = patch_insn(Insn(0x18, 1, 0, 0, 0), poisoned)
    assert [i.imm for i in out2] == [POISON_IMM, POISON_IMM]  # both lddw slots
    with pytest.raises(BtfError, match="unrecognized insn"):
        patch_insn(Insn(0x0F, 1, 2), res)  # a register ALU: nothing to relocate


def test_load_size_adjusts_for_unsigned_ints() -> None:
    loc = BtfSpec.from_types([Void(), U64, Struct("s", 8, (Member("f", 1, 0),))])
    tgt = BtfSpec.from_types([Void(), U8, Struct("s", 1, (Member("f", 1, 0),))])
    res = calc_relo_insn(loc, relo(2, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET), tgt)
    (out,) = patch_insn(Insn(0x79, 1, 2, 0, 0), res)  # u64 load becomes a u8 load
    assert out.code == 0x71
    ptr = BtfSpec.from_types([Void(), INT, Ptr(1), Struct("s", 8, (Member("f", 2, 0),))])
    res = calc_relo_insn(ptr, relo(3, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET), ptr)
    (out,) = patch_insn(Insn(0x79, 1, 2, 0, 0), res)
    assert out == Insn(0x79, 1, 2, 0, 0)


def test_corpus_bitfields_against_own_btf() -> None:
    """verifier_bitfield_write's case (the selftest passes the object's own BTF as target).

    Right shifts and signedness stay; bitfield loads are recomputed as the smallest load that covers
    the field (libbpf does the same: its result, with ``btf_custom_path`` set to the object,
    is byte-identical to this one — checked when this test was written)."""
    from pybpf.elf import ObjectSpec, apply_core

    vst = Path("/work/vst/obj/verifier_bitfield_write.o")
    if not vst.is_file():
        pytest.skip("verifier-selftest corpus not present")
    spec = ObjectSpec.from_path(str(vst))
    for prog in spec.programs.values():
        done = apply_core(prog, prog.btf)
        assert all(c.status == "applied" for c in done.core_relocations)
        for c in done.core_relocations:
            before, after = prog.insns.at(c.insn_idx), done.insns.at(c.insn_idx)
            if c.relo.kind in (K.BPF_CORE_FIELD_RSHIFT_U64, K.BPF_CORE_FIELD_SIGNED):
                assert before == after  # never ambiguous: libbpf validates these
            elif c.relo.kind == K.BPF_CORE_FIELD_BYTE_SIZE:
                assert after.imm in (1, 2, 4, 8) and after.imm <= before.imm
