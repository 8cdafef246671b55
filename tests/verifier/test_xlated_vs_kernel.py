"""``pybpf prog dump xlated`` against the running kernel's ``bpftool prog dump xlated``.

Every program of bench/progs/*.c and of tests/verifier/xlated/{maps_ops,div_dead,globals,loops,calls}.c
is compiled with clang, loaded into Linux with ``bpftool prog loadall`` and into pybpf with ``pybpf
prog loadall``, and the two listings must be equal — helper calls named by the kernel function that
implements them (``bpf_user_rnd_u32``), bpf-to-bpf calls by the callee's JIT symbol
``bpf_prog_<tag>_<name>`` — once these differences, which come from pybpf's own layouts and from
what a dump of a live kernel contains, are normalized away:

* map ids (``map[id:N]``), and helper-call suffixes (``#N``: bpftool prints the helper's kernel
  address offset, pybpf the helper id);
* the ``<tag>`` of ``bpf_prog_<tag>_<name>``, checked separately (:func:`check_call_symbols`):
  pybpf's is Linux 6.12's, SHA-1 of the callee's instructions as ``jit_subprogs`` leaves them;
  the running kernel (6.18) hashes the very same bytes with SHA-256;
* the offset of an array's values in the map (``r1 += 312`` in Linux, pybpf's map header size),
  of a hash element's value (``r0 += 56``: ``struct htab_elem`` + key; pybpf's element header is
  24 bytes) and of the LRU ref byte (``+35`` / ``+20``) — contract 1 and the kernel layer's storage
  layout.

The other programs of tests/verifier/xlated/ show rewrites pybpf does differently on purpose
(tests/verifier/xlated/README.md); they are only checked to load on both sides.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pybpf.isa import Insns
from pybpf.kernel.xlated_names import subprog_starts, subprog_tag_input

ROOT = Path(__file__).resolve().parents[2]
XLATED = Path(__file__).resolve().parent / "xlated"
CLANG = shutil.which("clang-19") or shutil.which("clang")
BPFTOOL = shutil.which("bpftool")
PYBPF = Path(sys.executable).with_name("pybpf")  # the console script installed next to this Python
EXACT = sorted(ROOT.glob("bench/progs/*.c")) + [XLATED / f"{n}.c" for n in ("maps_ops", "div_dead", "globals", "loops",
                                                                             "calls")]
DOCUMENTED = [XLATED / f"{n}.c" for n in ("skb_ctx", "socket_ldabs", "inlined")]

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.toolchain,
    pytest.mark.skipif(CLANG is None or BPFTOOL is None, reason="needs clang and bpftool"),
    pytest.mark.skipif(not PYBPF.exists(), reason="the pybpf command is not installed next to this Python"),
    pytest.mark.skipif(os.geteuid() != 0 or not Path("/sys/fs/bpf").is_dir(), reason="needs root and bpffs"),
]


def compile_c(src: Path, out: Path) -> Path:
    cflags = re.findall(r"^// cflags: (.*)$", src.read_text(), re.M)
    obj = out / (src.stem + ".o")
    arch_inc = f"/usr/include/{os.uname().machine}-linux-gnu"
    subprocess.run([str(CLANG), *" ".join(cflags).split(), "-O2", "-g", "-target", "bpf", f"-I{arch_inc}",
                    "-c", str(src), "-o", str(obj)], check=True, capture_output=True)
    return obj


def normalize(listing: str) -> list[str]:
    """The listing without instruction numbers and with the differences of the module docstring
    replaced by placeholders."""
    out: list[str] = []
    lines = [re.sub(r"^ *\d+: ", "", line) for line in listing.splitlines()]
    for i, line in enumerate(lines):
        line = re.sub(r"map\[id:\d+\]", "map[id:M]", line)
        line = re.sub(r"(call pc[-+]\d+#bpf_prog_)[0-9a-f]{16}_", r"\1TAG_", line)
        line = re.sub(r"(call [a-z_0-9]+)#-?\d+$", r"\1#H", line)
        prev = out[-1] if out else ""
        if re.fullmatch(r"\(07\) r1 \+= \d+", line) and re.search(r"= map\[id:M\]$", prev):
            line = "(07) r1 += ARRAY_VALUES"
        elif re.fullmatch(r"\(07\) r0 \+= \d+", line) \
                and (re.match(r"\(15\) if r0 == 0x0 goto", prev) or "LRU_REF" in prev) \
                and any("__htab_map_lookup_elem" in x for x in lines[max(0, i - 5):i]):
            line = "(07) r0 += HTAB_VALUE"
        elif re.fullmatch(r"\(71\) r1 = \*\(u8 \*\)\(r0 \+\d+\)|\(72\) \*\(u8 \*\)\(r0 \+\d+\) = 1", line) \
                and any("__htab_map_lookup_elem" in x for x in lines[max(0, i - 4):i]):
            line = re.sub(r"\+\d+", "+LRU_REF", line)
        out.append(line)
    return out


_SYMBOL_CALL = re.compile(r"^ *(\d+): \(85\) call pc([-+]\d+)#bpf_prog_([0-9a-f]{16})_(\w+)$", re.M)


def check_call_symbols(listing: str, insns: Insns, *, kernel: bool) -> int:
    """Every ``call pc+N#bpf_prog_<tag>_<name>`` of ``listing`` names the callee's BTF name and its
    tag over the instructions pybpf would hand the JIT (``subprog_tag_input`` of pybpf's stream
    ``insns``): pybpf's listing with Linux 6.12's SHA-1; the live kernel's with SHA-1 or (6.18)
    SHA-256 — wherever the callee's instructions can be the kernel's (no helper, kfunc or internal
    call, whose immediate is a kernel address there, and no map access, whose offsets are pybpf's).
    Returns how many kernel tags were checked."""
    starts = subprog_starts(insns)
    checked = 0
    for m in _SYMBOL_CALL.finditer(listing):
        idx, rel, tag, name = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
        target = idx + 1 + rel
        assert target in starts, m.group(0)
        callee = insns.at(target).meta
        assert name == callee.symbol, (m.group(0), callee.symbol)
        i = starts.index(target)
        data = subprog_tag_input(insns, starts, i)
        sha1, sha256 = hashlib.sha1(data).hexdigest()[:16], hashlib.sha256(data).hexdigest()[:16]
        if not kernel:
            assert tag == sha1, m.group(0)
            continue
        end = starts[i + 1] if i + 1 < len(starts) else insns.slot_count
        body = [x for j, x in insns.items() if target <= j < end]
        if any((x.code == 0x85 and x.src != 1) or (x.code == 0x18 and x.src in (1, 2)) for x in body):
            continue
        assert tag in (sha1, sha256), m.group(0)
        checked += 1
    return checked


def pybpf_streams(obj: Path, tmp_path: Path) -> dict[str, Insns]:
    """Each program's post-load stream, loaded in this process the way ``pybpf prog loadall`` does."""
    from pybpf.kernel import Kernel
    from pybpf.loader import load

    with load(obj, kernel=Kernel(tmp_path / "streams")) as coll:
        return {name: p._p.insns for name, p in coll.programs.items()}


def kernel_listings(obj: Path, pin: Path) -> dict[str, str]:
    subprocess.run([str(BPFTOOL), "prog", "loadall", str(obj), str(pin)], check=True, capture_output=True)
    try:
        return {p.name: subprocess.run([str(BPFTOOL), "prog", "dump", "xlated", "pinned", str(p)], check=True,
                                       capture_output=True, text=True).stdout for p in sorted(pin.iterdir())}
    finally:
        shutil.rmtree(pin, ignore_errors=True)


def pybpf_listings(obj: Path, bpffs: Path) -> dict[str, str]:
    env = os.environ | {"PYBPF_BPFFS": str(bpffs)}
    cli = [str(PYBPF)]
    (bpffs / "progs").mkdir(parents=True, exist_ok=True)
    subprocess.run([*cli, "prog", "loadall", str(obj), "/sys/fs/bpf/progs"], check=True, capture_output=True,
                   env=env)
    names = sorted(p.name for p in (bpffs / "progs").iterdir())
    return {n: subprocess.run([*cli, "prog", "dump", "xlated", "pinned", f"/sys/fs/bpf/progs/{n}"], check=True,
                              capture_output=True, text=True, env=env).stdout for n in names}


def _both(src: Path, tmp_path: Path, obj: Path | None = None) -> tuple[dict[str, str], dict[str, str]]:
    obj = obj or compile_c(src, tmp_path)
    pin = Path("/sys/fs/bpf") / f"pybpf_xlated_{os.getpid()}_{src.stem}"
    return kernel_listings(obj, pin), pybpf_listings(obj, tmp_path / "bpffs")


@pytest.mark.parametrize("src", EXACT, ids=[p.stem for p in EXACT])
def test_xlated_same_as_the_kernel(src: Path, tmp_path: Path) -> None:
    obj = compile_c(src, tmp_path)
    linux, ours = _both(src, tmp_path, obj)
    assert linux.keys() == ours.keys()
    streams = pybpf_streams(obj, tmp_path)
    for name in linux:
        assert normalize(ours[name]) == normalize(linux[name]), f"{src.name}:{name}\n--- linux\n{linux[name]}" \
                                                               f"--- pybpf\n{ours[name]}"
        check_call_symbols(ours[name], streams[name], kernel=False)
        check_call_symbols(linux[name], streams[name], kernel=True)


def test_subprogram_tags_match_the_kernel(tmp_path: Path) -> None:
    """calls.c and xdp_subprog_calls.c: every callee the kernel names by a tag pybpf can reproduce —
    nested calls, a callback address and an inlined bpf_loop's call in a subprogram — has that tag."""
    checked = 0
    for src in (XLATED / "calls.c", ROOT / "bench" / "progs" / "xdp_subprog_calls.c"):
        obj = compile_c(src, tmp_path)
        linux, _ = _both(src, tmp_path, obj)
        streams = pybpf_streams(obj, tmp_path / src.stem)
        checked += sum(check_call_symbols(linux[n], streams[n], kernel=True) for n in linux)
    assert checked >= 9  # calls.c: 6 calls of 4 callees; xdp_subprog_calls.c: 4 calls of 3 callees


@pytest.mark.parametrize("src", DOCUMENTED, ids=[p.stem for p in DOCUMENTED])
def test_documented_differences_load_on_both(src: Path, tmp_path: Path) -> None:
    linux, ours = _both(src, tmp_path)
    assert linux.keys() == ours.keys()
    assert all(text.strip() for text in [*linux.values(), *ours.values()])


def test_normalization_keeps_real_differences() -> None:
    """Only the listed differences are normalized: another offset, opcode or callee name still differs."""
    a = "   6: (85) call pc+27#bpf_prog_6cf4b5d4fc208ebe_parse_eth\n  27: (85) call bpf_user_rnd_u32#22592\n"
    b = "   6: (85) call pc+27#bpf_prog_c4e60603400a3d28_parse_eth\n  27: (85) call bpf_user_rnd_u32#7\n"
    assert normalize(a) == normalize(b)
    assert normalize(a) != normalize(b.replace("parse_eth", "parse_ip"))
    assert normalize(a) != normalize(b.replace("pc+27", "pc+28"))
    assert normalize(a) != normalize(b.replace("bpf_user_rnd_u32", "bpf_get_prandom_u32"))


def test_normalization_keeps_map_layout_differences() -> None:
    """Only the listed differences are normalized: another offset or opcode still differs."""
    a = "   4: (18) r1 = map[id:3]\n   6: (07) r1 += 312\n   7: (61) r0 = *(u32 *)(r2 +0)\n"
    b = "   4: (18) r1 = map[id:9]\n   6: (07) r1 += 256\n   7: (61) r0 = *(u32 *)(r2 +0)\n"
    assert normalize(a) == normalize(b)
    assert normalize(a) != normalize(b.replace("(r2 +0)", "(r2 +4)"))
    assert normalize("(07) r1 += 312\n") != normalize("(07) r1 += 256\n")  # not after a map lddw
