"""Global functions: prototypes from BTF (``btf_prepare_func_args``) and their call sites."""

from __future__ import annotations

import errno

import pytest

from pybpf.btf import BtfSpec
from pybpf.btf.types import Const, DeclTag, Func, FuncLinkage, FuncProto, Int, IntEncoding, Param, Ptr, Struct, Void
from pybpf.errors import VerifierError
from pybpf.isa.asm import assemble
from pybpf.uapi import ProgType
from pybpf.verifier import verify
from pybpf.verifier.funcargs import FuncArgsError, SubprogArg, prepare_func_args, returns_scalar

G = FuncLinkage.GLOBAL

# [1] int  [2] struct __sk_buff  [3] ptr->1  [4] ptr->2  [5] ptr->void  [6] const int  [7] ptr->6
TYPES = [
    Void(),
    Int("int", 4, IntEncoding.SIGNED),
    Struct("__sk_buff", 192),
    Ptr(1),
    Ptr(2),
    Ptr(0),
    Const(1),
    Ptr(7 - 1),
]


def spec_with(*funcs: tuple[str, list[int], int, list[tuple[str, int]]]) -> tuple[BtfSpec, dict[str, int]]:
    """BTF with the base types plus, per function, a FUNC_PROTO and a FUNC (and its arg tags)."""
    types = list(TYPES)
    ids: dict[str, int] = {}
    for name, params, ret, tags in funcs:
        types.append(FuncProto(ret, tuple(Param(f"a{i}", t) for i, t in enumerate(params))))
        types.append(Func(name, len(types) - 1, G))
        ids[name] = len(types) - 1
        for tag, idx in tags:
            types.append(DeclTag(f"arg:{tag}", ids[name], idx))
    return BtfSpec.from_types(types), ids


def test_argument_classes() -> None:
    btf, ids = spec_with(("f", [1, 4, 3, 7], 1, []), ("g", [3], 1, [("nonnull", 0)]), ("h", [5], 1, [("ctx", 0)]))
    args = prepare_func_args(btf, ids["f"], name="f", is_global=True, prog_type=ProgType.SOCKET_FILTER)
    assert args == [SubprogArg("scalar"), SubprogArg("ctx"), SubprogArg("mem", 4, nullable=True),
                    SubprogArg("mem", 4, nullable=True)]
    # the same struct is not the context of an XDP program: plain memory of its size there
    args = prepare_func_args(btf, ids["f"], name="f", is_global=True, prog_type=ProgType.XDP)
    assert args[1] == SubprogArg("mem", 192, nullable=True)
    g = prepare_func_args(btf, ids["g"], name="g", is_global=True, prog_type=ProgType.XDP)
    assert g == [SubprogArg("mem", 4, nullable=False)]
    h = prepare_func_args(btf, ids["h"], name="h", is_global=True, prog_type=ProgType.XDP)
    assert h == [SubprogArg("ctx")]
    assert returns_scalar(btf, ids["f"])


def test_unusable_prototypes_have_the_kernels_words() -> None:
    btf, ids = spec_with(("v", [5], 1, []), ("r", [1], 3, []), ("s", [1], 1, [("ctx", 0)]))
    with pytest.raises(FuncArgsError) as e:
        prepare_func_args(btf, ids["v"], name="v", is_global=True, prog_type=ProgType.XDP)
    assert e.value.message == "arg#0 reference type('UNKNOWN ') size cannot be determined: -22"
    with pytest.raises(FuncArgsError) as e:
        prepare_func_args(btf, ids["r"], name="r", is_global=True, prog_type=ProgType.XDP)
    assert e.value.message == "Global function r() doesn't return scalar. Only those are supported."
    with pytest.raises(FuncArgsError) as e:
        prepare_func_args(btf, ids["s"], name="s", is_global=True, prog_type=ProgType.XDP)
    assert e.value.message == "arg#0 has pointer tag, but is not a pointer type"
    # a static function is never loud: its BTF is merely unreliable
    with pytest.raises(FuncArgsError) as e:
        prepare_func_args(btf, ids["r"], name="r", is_global=False, prog_type=ProgType.XDP)
    assert e.value.message is None and e.value.errno == errno.EINVAL


MAIN = "r1 = 0\ncall pc+2\nr0 = 0\nexit\n"


def run_global(body: str, params: list[int], prog_type: int = ProgType.SOCKET_FILTER, main: str = MAIN,
               tags: list[tuple[str, int]] | None = None) -> str:
    btf, ids = spec_with(("main", [4], 1, []), ("sub", params, 1, tags or []))
    text = main + body
    sub_start = text.count("\n") - body.count("\n")
    func_info = [(0, "main", True, ids["main"]), (sub_start, "sub", True, ids["sub"])]
    v = verify(assemble(text), prog_type=prog_type, func_info=func_info, btf=btf, log_level=2)
    return v.log


def test_nullable_memory_argument_must_be_checked() -> None:
    with pytest.raises(VerifierError) as e:
        run_global("r0 = *(u32 *)(r1 +0)\nexit", [3])
    assert e.value.message == "R1 invalid mem access 'mem_or_null'"
    assert "Validating sub() func#1..." in e.value.log
    log = run_global("r0 = 0\nif r1 == 0x0 goto pc+1\nr0 = *(u32 *)(r1 +0)\nexit", [3])
    assert "Func#1 ('sub') is global and assumed valid." in log
    assert "Func#1 ('sub') is safe for any args that match its prototype" in log
    # beyond the pointee's 4 bytes is out of bounds
    with pytest.raises(VerifierError) as e:
        run_global("r0 = 0\nif r1 == 0x0 goto pc+1\nr0 = *(u32 *)(r1 +4)\nexit", [3])
    assert "invalid access to memory, mem_size=4 off=4 size=4" in e.value.log


def test_call_site_checked_against_the_prototype() -> None:
    # passing the context where memory is expected: "R1 type=ctx expected=fp" then the caller error
    main = "call pc+2\nr0 = 0\nexit\n"
    with pytest.raises(VerifierError) as e:
        run_global("r0 = 0\nexit", [3], main=main)
    assert e.value.message == "Caller passes invalid args into func#1 ('sub')"
    assert "R1 type=ctx expected=fp" in e.value.log
    # the context argument of a socket filter: a ctx pointer is required at the call
    assert "arg#0 expects pointer to ctx" not in run_global("r0 = 0\nexit", [4], main=main)
    with pytest.raises(VerifierError) as e:
        run_global("r0 = 0\nexit", [4])
    assert "arg#0 expects pointer to ctx" in e.value.log
    # initialised stack memory of the pointee's size is fine, 2 bytes of it are not
    stack = "r1 = 0\n*(u32 *)(r10 -4) = r1\nr1 = r10\nr1 += -{n}\ncall pc+2\nr0 = 0\nexit\n"
    log = run_global("r0 = *(u32 *)(r1 +0)\nexit", [3], main=stack.format(n=4), tags=[("nonnull", 0)])
    assert "Func#1 ('sub') is safe for any args that match its prototype" in log
    with pytest.raises(VerifierError) as e:
        run_global("r0 = 0\nexit", [3], main=stack.format(n=2))
    assert "Caller passes invalid args into func#1 ('sub')" in e.value.log


def test_ld_abs_needs_an_int_returning_subprogram() -> None:
    btf, ids = spec_with(("main", [4], 1, []), ("sub", [], 0, []))
    text = "r6 = r1\ncall pc+2\nr0 = 0\nexit\nr6 = r1\nr0 = *(u32 *)skb[0]\nexit"
    fi = [(0, "main", True, ids["main"]), (4, "sub", False, ids["sub"])]
    with pytest.raises(VerifierError) as e:
        verify(assemble(text), func_info=fi, btf=btf)
    assert e.value.message == "LD_ABS is only allowed in functions that return 'int'."
