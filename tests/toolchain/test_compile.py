"""Compiling BPF C: the ziglang wheel (needs only pip) and clang (marked toolchain), pybpf's headers."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest

from pybpf.elf import MapOrigin, ObjectSpec
from pybpf.errors import ToolchainError
from pybpf.toolchain import INCLUDE_DIR, build_argv, compile, compile_source, find_compiler
from pybpf.uapi import HelperId, MapType, ProgType

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed-demo"
BENCH = ROOT / "bench" / "progs"
SOURCES = [SEED / "demo.c", SEED / "demo_legacy.c", *sorted(BENCH.glob("*.c"))]

HAVE_ZIG = importlib.util.find_spec("ziglang") is not None
HAVE_CLANG = any(shutil.which(n) for n in ("clang-19", "clang"))
needs_zig = pytest.mark.skipif(not HAVE_ZIG, reason="the ziglang package is not installed")

EXPECTED = {  # source stem -> (program, maps)
    "demo": ("xdp_program", {"pkt_counter": (MapType.ARRAY, MapOrigin.BTF)}),
    "demo_legacy": ("xdp_program", {"pkt_counter": (MapType.ARRAY, MapOrigin.IPROUTE2)}),
    "xdp_count": ("xdp_count", {"counters": (MapType.ARRAY, MapOrigin.BTF)}),
    "xdp_flow_parse": ("xdp_flow_parse", {"flows": (MapType.HASH, MapOrigin.BTF)}),
    "xdp_fnv_hash": ("xdp_fnv_hash", {}),
    "xdp_lpm_route": ("xdp_lpm_route", {"routes": (MapType.LPM_TRIE, MapOrigin.BTF)}),
    "xdp_pass": ("xdp_pass", {}),
    "xdp_subprog_calls": ("xdp_subprog_calls", {}),
}


def check_object(obj: Path, stem: str) -> ObjectSpec:
    spec = ObjectSpec.from_path(str(obj))
    prog_name, maps = EXPECTED[stem]
    assert list(spec.programs) == [prog_name]
    prog = spec.programs[prog_name]
    assert prog.prog_type == ProgType.XDP and prog.license == "GPL"
    assert {k: (v.type, v.origin) for k, v in spec.maps.items()} == maps
    assert prog.insns.slot_count > 1
    if stem == "xdp_subprog_calls":
        assert set(prog.subprograms) == {"parse_eth", "parse_ipv4", "mix32"}
    if stem != "demo_legacy":
        assert spec.btf is not None and prog.line_info  # -g: BTF and line info
    return spec


@needs_zig
@pytest.mark.parametrize("src", SOURCES, ids=[s.stem for s in SOURCES])
def test_every_reference_program_compiles_with_zig(src: Path, tmp_path: Path) -> None:
    obj = compile(src, tmp_path / f"{src.stem}.o", compiler="zig", mcpu="v3")
    spec = check_object(obj, src.stem)
    # zig's clang must not leave unwind tables in the object
    assert not any(w for w in spec.warnings if "eh_frame" in w)


@pytest.mark.toolchain
@pytest.mark.skipif(not HAVE_CLANG, reason="clang is not installed")
@pytest.mark.parametrize("headers", ["auto", "bundled"])
@pytest.mark.parametrize("src", SOURCES, ids=[s.stem for s in SOURCES])
def test_every_reference_program_compiles_with_clang(src: Path, headers: str, tmp_path: Path) -> None:
    obj = compile(src, tmp_path / f"{src.stem}.o", compiler="clang", mcpu="v3", headers=headers)  # type: ignore[arg-type]
    check_object(obj, src.stem)


@pytest.mark.toolchain
@pytest.mark.skipif(not HAVE_CLANG, reason="clang is not installed")
def test_bundled_headers_give_the_same_code_as_the_systems(tmp_path: Path) -> None:
    for src in SOURCES:
        a = ObjectSpec.from_path(str(compile(src, tmp_path / "a.o", compiler="clang", headers="auto")))
        b = ObjectSpec.from_path(str(compile(src, tmp_path / "b.o", compiler="clang", headers="bundled")))
        for name in a.programs:
            assert a.programs[name].insns == b.programs[name].insns, src.name


@needs_zig
def test_compile_errors_carry_the_compiler_output(tmp_path: Path) -> None:
    src = tmp_path / "bad.c"
    src.write_text("int f(void) { return undefined_thing; }\n")
    with pytest.raises(ToolchainError) as ei:
        compile(src, tmp_path / "bad.o", compiler="zig")
    assert "undefined_thing" in ei.value.output and "error" in ei.value.output
    assert "zig failed" in str(ei.value)


def test_missing_source() -> None:
    with pytest.raises(ToolchainError, match="no such source file"):
        compile("/nonexistent/prog.c", compiler="zig")


@needs_zig
def test_compile_source_text_with_defines_and_includes(tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "val.h").write_text("#define VAL 41\n")
    code = (
        '#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n#include "val.h"\n'
        'SEC("xdp") int p(struct xdp_md *c) { return VAL + EXTRA; }\nchar LICENSE[] SEC("license") = "GPL";\n'
    )
    obj = compile_source(code, tmp_path / "p.o", compiler="zig", include_dirs=[tmp_path / "inc"], defines=["EXTRA=1"])
    prog = ObjectSpec.from_path(str(obj)).programs["p"]
    assert prog.insns[0].imm == 42


def test_command_lines() -> None:
    from pybpf.toolchain import Compiler

    zig = Compiler("zig", ("python", "-m", "ziglang", "cc"), "19.0.0")
    argv = build_argv(zig, "p.c", "p.o", mcpu="v3", include_dirs=["d"], defines=["A=1"])
    assert argv[:6] == ["python", "-m", "ziglang", "cc", "-target", "bpfel-freestanding-none"]
    assert "-fno-unwind-tables" in argv and "-mcpu=v3" in argv and "-Id" in argv and "-DA=1" in argv
    assert argv[argv.index("-idirafter") + 1] == str(INCLUDE_DIR)
    assert argv[-4:] == ["-c", "p.c", "-o", "p.o"]
    clang = Compiler("clang", ("/usr/bin/clang",), "19.1.7")
    argv = build_argv(clang, "p.c", "p.o", headers="bundled", debug=False, opt="-O1")
    assert argv[1:3] == ["-target", "bpf"] and "-nostdlibinc" in argv and "-g" not in argv and "-O1" in argv
    # pybpf's headers come after every system directory
    assert argv[-6:-4] == ["-idirafter", str(INCLUDE_DIR)]


def test_find_compiler_honours_preference() -> None:
    if HAVE_ZIG:
        assert find_compiler("zig").kind == "zig"
    if HAVE_CLANG:
        assert find_compiler("clang").kind == "clang"
        assert find_compiler().kind == "clang"
    elif HAVE_ZIG:
        assert find_compiler().kind == "zig"


def test_helper_declarations_match_the_uapi() -> None:
    text = (INCLUDE_DIR / "bpf" / "bpf_helper_defs.h").read_text()
    decls = dict(re.findall(r"\(\* const (bpf_\w+)\)\(.*\) = \(void \*\) (\d+);", text))
    assert len(decls) == len(HelperId) - 1
    for hid in HelperId:
        if hid:
            assert decls["bpf_" + hid.name] == str(int(hid))
    assert "static void *(* const bpf_map_lookup_elem)(void *map, const void *key) = (void *) 1;" in text
    assert "static long (* const bpf_tail_call)(void *ctx, void *prog_array_map, __u32 index) = (void *) 12;" in text


def test_uapi_enums_header_matches_the_uapi() -> None:
    text = (INCLUDE_DIR / "linux" / "bpf_uapi_enums.h").read_text()
    for m in MapType:
        assert f"\tBPF_MAP_TYPE_{m.name} = {int(m)}," in text
    for p in ProgType:
        assert f"\tBPF_PROG_TYPE_{p.name} = {int(p)}," in text
    assert "\tXDP_PASS = 2," in text


def test_generated_headers_are_up_to_date() -> None:
    """Re-running tools/gen_bpf_headers.py must change nothing (needs the Linux tree it reads)."""
    linux = Path("/work/ref/linux-source-6.12")
    if not (linux / "include/uapi/linux/bpf.h").is_file():
        pytest.skip("Linux 6.12 source not available")
    import importlib.util as iu

    spec = iu.spec_from_file_location("gen_bpf_headers", ROOT / "tools" / "gen_bpf_headers.py")
    assert spec and spec.loader
    gen = iu.module_from_spec(spec)
    spec.loader.exec_module(gen)
    protos = gen.parse_protos(linux / "include/uapi/linux/bpf.h")
    assert gen.helper_defs(protos) == (INCLUDE_DIR / "bpf" / "bpf_helper_defs.h").read_text()
    assert gen.uapi_enums() == (INCLUDE_DIR / "linux" / "bpf_uapi_enums.h").read_text()
    assert gen.bpf_common() == (INCLUDE_DIR / "linux" / "bpf_common.h").read_text()


def test_headers_ship_with_the_package() -> None:
    for rel in (
        "bpf/bpf_helpers.h",
        "bpf/bpf_endian.h",
        "bpf/bpf_core_read.h",
        "bpf/bpf_helper_defs.h",
        "linux/bpf.h",
        "linux/types.h",
        "linux/if_ether.h",
        "linux/ip.h",
        "linux/ipv6.h",
        "linux/in.h",
        "linux/tcp.h",
        "linux/udp.h",
        "asm/types.h",
    ):
        assert (INCLUDE_DIR / rel).is_file(), rel
    assert INCLUDE_DIR.is_relative_to(Path(__import__("pybpf").__file__).parent)


@needs_zig
def test_without_clang_on_path_zig_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with only Python and pip: no clang on PATH, so ``pybpf cc`` (no --compiler) and
    ``compile()`` fall back to the ziglang wheel, and the seed demo still builds."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    comp = find_compiler()
    assert comp.kind == "zig" and comp.command[1:] == ("-m", "ziglang", "cc")
    with pytest.raises(ToolchainError, match="no clang"):
        find_compiler("clang")
    obj = compile(SEED / "demo.c", tmp_path / "demo.o")
    check_object(obj, "demo")

    from pybpf.cli.app import main

    assert main(["cc", str(SEED / "demo_legacy.c"), "-o", str(tmp_path / "legacy.o")]) == 0
    check_object(tmp_path / "legacy.o", "demo_legacy")
