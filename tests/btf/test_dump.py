"""``bpftool btf dump`` output, character for character.

Reference outputs beside each fixture (tests/data/objects/):

* ``NAME.bpftool-raw.txt`` / ``NAME.bpftool-c.h``: the installed bpftool (7.1) — raw form and the
  unsorted C form. bpftool 7.1 predates three things bpftool 7.5 (Linux 6.12) prints and pybpf
  follows: the ``__ksym``/``__weak`` macro block, the kfunc block, and ``mode(byte)`` on one-byte
  enums; the comparison takes those out of pybpf's output.
* ``NAME.sorted-c.h``: bpftool 7.5's sorted C dump (its ``sort_btf_c`` and ``dump_btf_c``) built
  against libbpf 1.1, whose ``btf_dump`` writes an empty parameter list as ``()`` where 6.12 writes
  ``(void)``; the comparison maps that one difference.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pybpf.btf import BtfSpec, dump_c, dump_raw, dump_raw_json, type_signature
from pybpf.btf.types import FuncProto, Int, IntEncoding, Ptr, Struct, Void
from pybpf.elf import read_btf

OBJ = Path(__file__).resolve().parents[1] / "data" / "objects"
NAMES = sorted(p.stem for p in OBJ.glob("*.o"))
KSYM_WEAK = (
    '#ifndef __ksym\n#define __ksym __attribute__((section(".ksyms")))\n#endif\n\n'
    "#ifndef __weak\n#define __weak __attribute__((weak))\n#endif\n\n"
)
KFUNCS = re.compile(r"\n/\* BPF kfuncs \*/\n#ifndef BPF_NO_KFUNC_PROTOTYPES\n.*?#endif\n\n", re.S)


def btf_of(name: str) -> BtfSpec:
    return read_btf((OBJ / f"{name}.o").read_bytes())[0]


def as_bpftool_71(text: str) -> str:
    text = text.replace(KSYM_WEAK, "", 1)
    text = KFUNCS.sub("", text)
    return text.replace(" __attribute__((mode(byte)))", "")


@pytest.mark.parametrize("name", NAMES)
def test_raw_dump_matches_bpftool(name: str) -> None:
    assert dump_raw(btf_of(name)) == (OBJ / f"{name}.bpftool-raw.txt").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_unsorted_c_dump_matches_bpftool(name: str) -> None:
    ours = as_bpftool_71(dump_c(btf_of(name), sort=False))
    assert ours == (OBJ / f"{name}.bpftool-c.h").read_text()


@pytest.mark.parametrize("name", [n for n in NAMES if (OBJ / f"{n}.sorted-c.h").exists()])
def test_sorted_c_dump_matches_bpftool_75(name: str) -> None:
    ref = (OBJ / f"{name}.sorted-c.h").read_text()
    ours = dump_c(btf_of(name))
    assert ours.replace("(void)", "()") == ref.replace("(void)", "()")


def test_btf_types_c_dump_details() -> None:
    """Spot checks on the tricky fixture (the reference comparison covers the rest)."""
    text = dump_c(btf_of("btf_types"), sort=False)
    assert "\tunsigned int a: 3;\n\tunsigned int b: 5;\n\tint c: 12;" in text
    assert "} __attribute__((packed));" in text
    assert "enum small_e {\n\tSMALL_A = 1,\n\tSMALL_B = 2,\n} __attribute__((mode(byte)));" in text
    assert "\tNEG_A = -5," in text
    assert "BIG_B = 4294967296ULL," in text
    assert "typedef int (*handler_t)(void *, const char *, ...);" in text
    assert "\tint (*ops[3])(struct everything *, fwd_t *);" in text
    assert "\tchar matrix[2][3];" in text
    assert "struct fwd_only;" in text
    assert "\tvolatile const int cv;" in text  # BTF order: VOLATILE -> CONST -> int
    assert "\tstruct {\n\t\tint x;\n\t\tint y;\n\t} point;" in text


def test_sorted_dump_puts_enums_first_then_ints_then_structs() -> None:
    text = dump_c(btf_of("btf_types"))
    first_enum = text.index("enum ")
    first_struct = text.index("\nstruct ")
    assert first_enum < first_struct
    # ranks: named enums (1) before named structs (3)
    assert text.index("enum neg_e {") < text.index("struct bits {")


def test_duplicate_names_get_suffixes() -> None:
    types = [
        Void(),
        Int("int", 4, IntEncoding.SIGNED, 0, 32),
        Struct("dup", 4, ()),
        Struct("dup", 8, ()),
    ]
    from pybpf.btf import Member

    types[2] = Struct("dup", 4, (Member("a", 1, 0),))
    types[3] = Struct("dup", 8, (Member("a", 1, 0), Member("b", 1, 32)))
    text = dump_c(BtfSpec.from_types(types), sort=False)
    assert "struct dup {\n\tint a;\n};" in text
    assert "struct dup___2 {\n\tint a;\n\tint b;\n};" in text


def test_type_cycle_through_pointer_gets_forward_declaration() -> None:
    from pybpf.btf import Member

    types = [
        Void(),
        Struct("node", 8, (Member("next", 2, 0),)),
        Ptr(1),
    ]
    text = dump_c(BtfSpec.from_types(types), sort=False)
    assert "struct node {\n\tstruct node *next;\n};" in text


def test_raw_json() -> None:
    d = dump_raw_json(btf_of("maps_legacy"))
    kinds = {t["kind"] for t in d["types"]}
    assert "FUNC" in kinds and "FUNC_PROTO" in kinds
    first = d["types"][0]
    assert set(first) >= {"id", "kind", "name"}


def test_type_signature_like_bpftool() -> None:
    btf = btf_of("subprogs")
    fid = next(i for i in btf.find("main_a"))
    assert type_signature(btf, fid) == "int main_a(struct __sk_buff * skb)"
    fid = next(i for i in btf.find("loop_cb"))
    assert type_signature(btf, fid) == "int loop_cb(__u32 idx, void * ctx)"
    proto = BtfSpec.from_types([Void(), Int("int", 4, IntEncoding.SIGNED, 0, 32), FuncProto(1, ())])
    assert type_signature(proto, 2) == "int ()"


@pytest.mark.kernel
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed")
@pytest.mark.parametrize("name", ["btf_types", "globals", "externs"])
def test_against_installed_bpftool_live(name: str) -> None:
    path = OBJ / f"{name}.o"
    raw = subprocess.run(["bpftool", "btf", "dump", "file", str(path)], capture_output=True, text=True, check=True)
    assert dump_raw(btf_of(name)) == raw.stdout
    c = subprocess.run(
        ["bpftool", "btf", "dump", "file", str(path), "format", "c"], capture_output=True, text=True, check=True
    )
    assert as_bpftool_71(dump_c(btf_of(name), sort=False)) == c.stdout


@pytest.mark.toolchain
@pytest.mark.skipif(shutil.which("clang-19") is None and shutil.which("clang") is None, reason="no clang")
@pytest.mark.parametrize("sort", [True, False])
def test_c_dump_compiles(tmp_path: Path, sort: bool) -> None:
    """The C form is a usable header: a BPF program including it compiles."""
    from pybpf.toolchain import compile

    header = tmp_path / "types.h"
    header.write_text(dump_c(btf_of("btf_types"), sort=sort))
    src = tmp_path / "use.c"
    src.write_text('#include "types.h"\nint use(struct everything *e) { return e->bits.c + sizeof(struct bits); }\n')
    compile(src, tmp_path / "use.o", compiler="clang", include_dirs=[tmp_path], headers="bundled")
