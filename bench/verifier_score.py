#!/usr/bin/env python3
"""The verifier scoreboard: pybpf's verifier against the Linux 6.12 verifier selftests.

usage: bench/verifier_score.py [--corpus DIR] [--build] [--only SUBSTRING] [--types T,T] [--jobs N]
                               [--json OUT] [--write-results] [--show-failures N]

The corpus is what tools/verifier-selftests/build makes (objects + manifest.json). Its default
location (:func:`default_corpus`): $PYBPF_VST when set; else ${XDG_CACHE_HOME:-~/.cache}/pybpf/vst
when it holds a corpus; else /work/vst when that exists (the development machine's copy); else the
cache directory again, which ``--build`` fills by running the build script there (apt for clang,
bpftool and linux-source-6.12 on a fresh machine, as the script says). ``make score`` does that.

For every non-auxiliary, privileged test of the supported program types in DIR/manifest.json,
loads its object with pybpf's ELF reader, creates its maps, and verifies only that program (plus
the object's auxiliary programs, which the kernel harness loads alongside but which do not count)
with the manifest's flags (+ BPF_F_TEST_RND_HI32 and BPF_F_TEST_REG_INVARIANTS, as test_loader
does) and log level. Reports:

* verdict agreement — accepted/rejected as the manifest expects;
* message agreement — every expected log substring present, in order, ``{{...}}`` parts as
  regular expressions (test_loader's rules), over the tests that carry messages;
* retval agreement — accepted programs run once through the kernel layer's BPF_PROG_TEST_RUN with
  the interpreter, over the tests with an expected return value (when the kernel layer exists);
* unprivileged agreement — the tests that also declare an unprivileged outcome
  (``__success_unpriv``/``__failure_unpriv``, ``__msg_unpriv``) verified again with no
  capabilities, against that outcome;
* per-file tables (privileged runs).

``--write-results`` stores the summary in bench/results/verifier_score.txt. Each verification has
a wall-clock guard of $PYBPF_SCORE_TIME_LIMIT seconds (default 180; the kernel has none, but a few
tests walk the full million instructions before the kernel's own "too large" verdict), and
PYBPF_SCORE_RETVAL=0 skips the test runs. PYBPF_SCORE_DEBUG=1 prints why a test could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

FLAGS = {"BPF_F_STRICT_ALIGNMENT": 1, "BPF_F_ANY_ALIGNMENT": 2, "BPF_F_TEST_RND_HI32": 4,
         "BPF_F_TEST_STATE_FREQ": 8, "BPF_F_SLEEPABLE": 16, "BPF_F_XDP_HAS_FRAGS": 32,
         "BPF_F_TEST_REG_INVARIANTS": 128}
DEFAULT_FLAGS = FLAGS["BPF_F_TEST_RND_HI32"] | FLAGS["BPF_F_TEST_REG_INVARIANTS"]
MAIN_TYPES = ("socket_filter", "sched_cls", "sched_act", "xdp")
OTHER_TYPES = ("cgroup_skb", "tracepoint", "raw_tracepoint", "kprobe")
TIME_LIMIT = float(os.environ.get("PYBPF_SCORE_TIME_LIMIT", "180"))
RUN_RETVAL = os.environ.get("PYBPF_SCORE_RETVAL", "1") != "0"
REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "tools" / "verifier-selftests" / "build"
DEV_CORPUS = Path("/work/vst")
BTF_REQUIRED_MAPS = (24, 28, 29, 32)  # SK_STORAGE, INODE_STORAGE, TASK_STORAGE, CGRP_STORAGE


def default_corpus() -> Path:
    """Where the corpus is (or is to be built): see the module docstring. The corpus tests use
    the same rule, so ``make score`` and ``pytest`` look at the same objects."""
    env = os.environ.get("PYBPF_VST")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pybpf" / "vst"
    if (cache / "manifest.json").exists():
        return cache
    if (DEV_CORPUS / "manifest.json").exists():
        return DEV_CORPUS
    return cache


def ensure_corpus(corpus: Path) -> None:
    """Build the corpus into ``corpus`` with the vendored build script when it has no manifest."""
    if (corpus / "manifest.json").exists():
        return
    print(f"building the Linux 6.12 verifier selftests into {corpus} ({BUILD_SCRIPT})", file=sys.stderr)
    corpus.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(BUILD_SCRIPT), str(corpus)], check=True)


def flags_of(spec: dict[str, Any]) -> int:
    f = DEFAULT_FLAGS
    for name in spec["prog_flags"]:
        clear = name.startswith("!")
        raw = name.lstrip("!")
        v = int(raw, 0) if raw.lstrip("-").isdigit() else FLAGS.get(raw, 0)
        f = f & ~v if clear else f | v
    return f


def pattern_matches(log: str, msgs: list[str]) -> bool:
    """test_loader semantics: each pattern found after the previous match; {{...}} is a regex."""
    pos = 0
    for msg in msgs:
        rx = "".join(re.escape(p) if i % 2 == 0 else p for i, p in enumerate(re.split(r"\{\{|\}\}", msg)))
        m = re.compile(rx).search(log, pos)
        if not m:
            return False
        pos = m.end()
    return True


@dataclass
class Result:
    object: str
    function: str
    prog_type: str
    expect: str
    accepted: bool | None
    errno: int | None = None
    msgs_expected: bool = False
    msgs_ok: bool | None = None
    xlated_expected: bool = False
    xlated_ok: bool | None = None
    retval_expected: bool = False
    retval_ok: bool | None = None
    error: str = ""
    seconds: float = 0.0
    log_tail: list[str] = field(default_factory=list)
    unpriv: bool = False
    sound_runs: int = 0
    sound_faults: list[str] = field(default_factory=list)
    sound_errors: list[str] = field(default_factory=list)
    sound_not_run: str = ""

    @property
    def verdict_ok(self) -> bool:
        return self.accepted is not None and self.accepted == (self.expect == "success")


_OBJ_CACHE: dict[str, Any] = {}
_KERNEL: list[Any] = []
RETVAL_NAMES = {"INT_MIN": -(1 << 31), "TEST_DATA_LEN": 64}
# prog_tests/verifier.c: objects whose tests run with other capabilities or pre-filled maps
CAPS = {"verifier_mtu.o": frozenset({"CAP_BPF"})}
TEST_VAL = (28).to_bytes(4, "little") + bytes(24) + (0xABCDEF12).to_bytes(4, "little") + bytes(16)
INIT_MAPS = {"verifier_array_access.o": "map_array_ro", "verifier_value_ptr_arith.o": "map_array_48b"}


def _kernel() -> Any:
    """One pybpf kernel per worker process, its bpffs in a temporary directory."""
    if not _KERNEL:
        import tempfile

        from pybpf.kernel import Kernel

        _KERNEL.append(Kernel(tempfile.mkdtemp(prefix="pybpf-score-")))
    return _KERNEL[0]


def func_info_of(prog: Any) -> list[tuple[int, str, bool, int]]:
    """BTF func info as the verifier and the kernel layer take it: (insn, name, is_global, type id).
    A linked program's records carry instruction indexes in ``insn_off`` (the kernel's unit)."""
    out = []
    if prog.btf is not None:
        for fi in prog.func_info:
            with contextlib.suppress(Exception):
                t = prog.btf.type_by_id(fi.type_id)
                out.append((fi.insn_off, t.name, int(getattr(t, "linkage", 0)) == 1, fi.type_id))
    return out


class CouldNotLoad(Exception):
    """The kernel layer could not load the program (a map type or helper it lacks...)."""


@contextlib.contextmanager
def loaded(spec: dict[str, Any], obj: Any, prog: Any, flags: int) -> Iterator[Any]:
    """The program loaded through pybpf's kernel layer as test_loader loads it: the object's maps
    created (and filled as libbpf does: global data, prog arrays with the object's programs), the
    verifier's rewrites applied. Yields the kernel layer's ``Program``; raises
    :class:`CouldNotLoad` when the kernel layer lacks a piece the program needs."""
    from pybpf.errors import PybpfError
    from pybpf.kernel import MapAttrs
    from pybpf.kernel.prog_load import LoadAttrs, prog_load
    from pybpf.verifier.specmaps import special_fields_from_btf

    k = _kernel()
    fds: dict[str, int] = {}
    maps: dict[int, Any] = {}
    extra_fds: list[int] = []
    try:
        try:
            for name, ms in obj.maps.items():
                inner = None
                if ms.inner_map is not None:
                    im = ms.inner_map
                    inner = k.create_map(MapAttrs(int(im.type), im.key_size, im.value_size, im.max_entries, im.flags))
                lock = [off for kind, off, _ in special_fields_from_btf(obj.btf, ms.value_type_id)
                        if kind == "bpf_spin_lock"]
                attrs = MapAttrs(int(ms.type), ms.key_size, ms.value_size, ms.max_entries, ms.flags,
                                 name=name[:15], inner_map=inner, spin_lock_off=lock[0] if lock else None)
                if int(ms.type) in BTF_REQUIRED_MAPS:  # local storages need key/value BTF, as libbpf passes
                    attrs.btf, attrs.btf_key_type_id, attrs.btf_value_type_id = \
                        obj.btf, ms.key_type_id or 0, ms.value_type_id or 0
                try:
                    m = k.create_map(attrs)
                except PybpfError:
                    # a map type the kernel layer lacks: fine as long as this program does not use it
                    # (its fd then names no map and the load fails: "could not run")
                    fds[name] = 10_000 + len(fds)
                    continue
                if ms.data is not None:
                    m.update_elem_sys(bytes(4), bytes(ms.data).ljust(ms.value_size, b"\0"), 0)
                if INIT_MAPS.get(spec["object"]) == name:
                    m.update_elem_sys(bytes(4), TEST_VAL[: ms.value_size].ljust(ms.value_size, b"\0"), 0)
                if ms.frozen:
                    m.freeze()
                fd = k.new_fd(m)
                fds[name] = fd
                maps[fd] = m
            for name, ms in obj.maps.items():
                for index, target in (ms.values or {}).items():
                    tprog = obj.programs.get(target)
                    if tprog is None or int(ms.type) != 3:  # PROG_ARRAY
                        continue
                    ta = LoadAttrs(prog_type=int(tprog.prog_type), insns=tprog.with_map_fds(fds), license="GPL",
                                   name=tprog.name[:15], expected_attach_type=int(tprog.expected_attach_type or 0),
                                   maps=maps, func_info=func_info_of(tprog) or None, prog_btf=tprog.btf)
                    tfd = k.new_fd(prog_load(k, ta).program)
                    extra_fds.append(tfd)
                    maps[fds[name]].update_elem_sys(index.to_bytes(4, "little"), tfd.to_bytes(4, "little"), 0)
            a = LoadAttrs(prog_type=int(prog.prog_type), insns=prog.with_map_fds(fds), license="GPL",
                          name=prog.name[:15], expected_attach_type=int(prog.expected_attach_type or 0),
                          prog_flags=flags, maps=maps, func_info=func_info_of(prog) or None, prog_btf=prog.btf)
            program = prog_load(k, a).program
        except Exception as e:  # PybpfError and whatever else the kernel layer lacks
            _debug(e)
            raise CouldNotLoad(str(e)) from e
        yield program
    finally:
        for fd in [*fds.values(), *extra_fds]:
            with contextlib.suppress(Exception):
                k.close(fd)


def _debug(e: BaseException) -> None:
    if os.environ.get("PYBPF_SCORE_DEBUG"):
        import traceback

        traceback.print_exception(e)


def run_retval(spec: dict[str, Any], obj: Any, prog: Any, flags: int) -> bool | None:
    """test_loader's run: the loaded program (see :func:`loaded`) run once with BPF_PROG_TEST_RUN
    on 64 zero bytes; compare r0. None when the kernel layer cannot run it.

    The reference interpreter runs it; a verified program that outruns the interpreter's safety
    budget (100M instructions — e.g. ``cond_break`` loops that spin until may_goto's 8M-iteration
    counter runs out, in main and again in a subprogram) is run again on the JIT, as the kernel
    itself would run it: the budget guards against runaway code, not verified code."""
    from pybpf.errors import InstructionLimitExceeded
    from pybpf.kernel.test_run import test_run

    want = spec["retval"]
    expected = None if want == "POINTER_VALUE" else RETVAL_NAMES.get(want)
    if expected is None and want != "POINTER_VALUE":
        expected = int(want, 0)
    try:
        with loaded(spec, obj, prog, flags) as program:
            try:
                run = test_run(_kernel(), program, bytes(64), repeat=1)
            except InstructionLimitExceeded:
                run = test_run(_kernel(), program, bytes(64), repeat=1, engine="jit")
    except CouldNotLoad:
        return None
    except Exception as e:  # a run the kernel layer cannot do (missing helper...): "could not run"
        _debug(e)
        return None
    if expected is None:
        return True
    return (run.retval & 0xFFFFFFFF) == (expected & 0xFFFFFFFF)


# -- soundness: accepted programs on random inputs -------------------------------------------------

SOUND_PACKET_SIZES = (0, 1, 13, 14, 15, 34, 54, 64, 100, 1500)
SOUND_BUDGET = 200_000
_SKB_L2 = ("sched_cls", "sched_act")
_SKB_FIELDS = ("mark", "priority", "ifindex", "ingress_ifindex", "protocol", "vlan_tci", "vlan_present", "hash",
               "queue_mapping", "tc_index", "napi_id", "pkt_type", "gso_segs", "gso_size", "wire_len")


@dataclass
class Soundness:
    """Soundness runs of one accepted program: how many ran, the memory faults (a verifier bug
    each), other execution errors (the engine refused something a kernel would run), why it
    could not run (a kernel-layer gap)."""

    runs: int = 0
    faults: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    not_run: str = ""


def _randomize_maps(program: Any, rng: Any) -> None:
    """Random values in the program's plain array maps (the verifier treats map values as unknown
    scalars): not frozen ones (their contents are known to the verifier), not values with
    special fields (spin locks, timers)."""
    from pybpf.uapi import MapType

    for m in program.used_maps.values():
        if int(m.map_type) not in (MapType.ARRAY, MapType.PERCPU_ARRAY) or getattr(m, "frozen", False):
            continue
        if getattr(m, "spin_lock_off", None) is not None or getattr(m, "btf_fields", ()):
            continue
        for i in range(min(m.max_entries, 4)):
            with contextlib.suppress(Exception):
                m.update_elem_sys(i.to_bytes(4, "little"), rng.randbytes(m.value_size), 0)


def _sound_contexts(prog_type: str, space: Any, rng: Any) -> Iterator[tuple[int, Any, Any, Any]]:
    """(r1, run env state, SkbView or None, cleanup) for every input of one program type: packets
    of every size in SOUND_PACKET_SIZES with random bytes and random context fields; random
    plain-memory contexts for the tracing types."""
    from pybpf.kernel.runenv import ETH_HLEN, SkbState, XdpState
    from pybpf.progtypes import descriptor
    from pybpf.uapi import ProgType
    from pybpf.vm import RegionKind, SkbView

    if prog_type == "xdp":
        for n in SOUND_PACKET_SIZES:
            meta = rng.choice((0, 0, 4, 8, 32))  # XdpState's linear part holds the metadata, then the packet
            x = XdpState(space, rng.randbytes(meta + n), meta_len=meta, ingress_ifindex=rng.randrange(1, 5),
                         rx_queue_index=rng.randrange(4))
            yield x.ctx_address, {"xdp": x}, None, x.close
    elif prog_type in ("socket_filter", "cgroup_skb", *_SKB_L2):
        l2 = prog_type in _SKB_L2
        for n in SOUND_PACKET_SIZES:
            fields = {f: rng.randrange(1 << 16) for f in _SKB_FIELDS}
            s = SkbState(space, rng.randbytes(n if l2 else n + ETH_HLEN), l2=l2, fields=fields)
            view = SkbView(data=s.data_address, headlen=s.len, network_offset=ETH_HLEN if l2 else 0,
                           mac_offset=0 if l2 else -ETH_HLEN)
            yield s.ctx_address, {"skb": s}, view, s.close
    else:
        t = {"kprobe": ProgType.KPROBE, "tracepoint": ProgType.TRACEPOINT,
             "raw_tracepoint": ProgType.RAW_TRACEPOINT}[prog_type]
        layout = descriptor(t).runtime
        assert layout is not None
        for _ in range(4):
            region = space.add(bytearray(rng.randbytes(layout.size)), RegionKind.CTX, layout.name)
            yield region.address(), {}, None, lambda region=region: space.remove(region)


def run_soundness(spec: dict[str, Any], obj: Any, prog: Any, flags: int, seed: int) -> Soundness:
    """The soundness check of one accepted program: run it in the reference interpreter on every
    input of :func:`_sound_contexts` (maps randomized half of the time); a memory fault means the
    verifier accepted an unsafe program."""
    import random

    from pybpf.errors import ExecutionError, HelperError, InstructionLimitExceeded, MemoryFault
    from pybpf.kernel.engines import kernel_space, run_lock
    from pybpf.kernel.runenv import RunEnv

    res = Soundness()
    rng = random.Random(seed)
    k = _kernel()
    try:
        with loaded(spec, obj, prog, flags) as program:
            runner = program.runner("interpreter")
            space = kernel_space(k)
            for rnd in (False, True):
                if rnd:
                    _randomize_maps(program, rng)
                for r1, state, view, close in _sound_contexts(spec["prog_type"], space, rng):
                    env = RunEnv(k, program, cpu=rng.randrange(2), **state)
                    try:
                        with run_lock(k):
                            runner.run(r1, env=env, skb=view, budget=SOUND_BUDGET)
                        res.runs += 1
                    except InstructionLimitExceeded:
                        res.runs += 1
                    except MemoryFault as e:
                        res.runs += 1
                        res.faults.append(str(e))
                    except HelperError as e:  # a helper the kernel layer lacks: not a verifier matter
                        res.not_run = res.not_run or f"{type(e).__name__}: {e}"
                    except ExecutionError as e:  # the vm refused something else: shown, not a fault
                        res.runs += 1
                        res.errors.append(f"{type(e).__name__}: {e}")
                    finally:
                        close()
    except CouldNotLoad as e:
        res.not_run = str(e)
    return res


def run_one(corpus: str, spec: dict[str, Any], unpriv: bool = False, soundness: bool = False) -> Result:
    from pybpf.elf import ObjectSpec
    from pybpf.errors import PybpfError, VerifierError
    from pybpf.uapi import ProgType
    from pybpf.verifier import verify
    from pybpf.verifier.selftests import disasm_patterns, match_patterns, xlated_text
    from pybpf.verifier.specmaps import maps_from_specs

    if unpriv:
        # the same program loaded without capabilities: its own verdict and messages (retvals
        # are checked on the privileged load only)
        spec = spec | {"expect": spec["unpriv_expect"], "msgs": spec["unpriv_msgs"], "retval": None}
    res = Result(spec["object"], spec["function"], spec["prog_type"], spec["expect"], None,
                 msgs_expected=bool(spec["msgs"]), retval_expected=spec["retval"] is not None, unpriv=unpriv,
                 xlated_expected=bool(spec["xlated"]) and not unpriv)
    t0 = time.monotonic()
    try:
        path = os.path.join(corpus, "obj", spec["object"])
        obj = _OBJ_CACHE.get(path)
        if obj is None:
            obj = ObjectSpec.from_path(path)
            _OBJ_CACHE[path] = obj
        prog = obj.programs.get(spec["function"])
        if prog is None:
            res.error = "program not found by the ELF reader"
            return res
        maps, fds = maps_from_specs(obj.maps, obj.btf)
        by_fd = {fds[n]: m for n, m in maps.items()}
        insns = prog.with_map_fds(fds)
        func_info = func_info_of(prog)
        pt = prog.prog_type if prog.prog_type is not None else ProgType.SOCKET_FILTER
        level = spec["log_level"] or 1
        verified = None
        try:
            verified = verify(
                insns, prog_type=pt, maps=by_fd, prog_flags=flags_of(spec) | prog.prog_flags, log_level=level,
                expected_attach_type=int(prog.expected_attach_type or 0), prog_name=prog.name,
                func_info=func_info or None, btf=prog.btf, gpl=True, deadline=time.monotonic() + TIME_LIMIT,
                caps=CAPS.get(spec["object"]), unprivileged=unpriv)
            res.accepted = True
            log = ""
        except VerifierError as e:
            res.accepted = e.errno == 0
            res.errno = e.errno
            log = e.log
            if e.errno == 62:  # ETIME: our wall-clock guard, not a kernel verdict
                res.accepted = None
                res.error = "time limit"
        if res.accepted is not None and res.accepted:
            # the log of an accepted program: verify again to capture it (logs are returned)
            pass
        if res.accepted and spec["retval"] is not None and RUN_RETVAL:
            res.retval_ok = run_retval(spec, obj, prog, flags_of(spec) | prog.prog_flags)
        if res.accepted and soundness and not unpriv:
            seed = sum(map(ord, f"{spec['object']}:{spec['function']}"))
            sound = run_soundness(spec, obj, prog, flags_of(spec) | prog.prog_flags, seed)
            res.sound_runs, res.sound_faults, res.sound_not_run = sound.runs, sound.faults, sound.not_run
            res.sound_errors = sound.errors
        if res.xlated_expected and verified is not None:
            # test_loader's view of the program after the rewrites (pybpf's post-fixup stream, what
            # `pybpf prog dump xlated` shows), matched as test_loader matches __xlated
            res.xlated_ok = match_patterns(xlated_text(verified.insns), disasm_patterns(spec["xlated"]))
        elif res.xlated_expected:
            res.xlated_ok = False
        if spec["msgs"]:
            if res.accepted:
                v = verify(insns, prog_type=pt, maps=by_fd, prog_flags=flags_of(spec) | prog.prog_flags,
                           log_level=level, expected_attach_type=int(prog.expected_attach_type or 0),
                           prog_name=prog.name, func_info=func_info or None, btf=prog.btf,
                           deadline=time.monotonic() + TIME_LIMIT, caps=CAPS.get(spec["object"]),
                           unprivileged=unpriv)
                log = v.log
            res.msgs_ok = pattern_matches(log, spec["msgs"])
        res.log_tail = log.strip().splitlines()[-3:]
    except PybpfError as e:
        res.error = f"{type(e).__name__}: {e}"
    except Exception as e:
        import traceback

        res.error = f"CRASH {type(e).__name__}: {e} @ {traceback.extract_tb(e.__traceback__)[-1]}"
    res.seconds = time.monotonic() - t0
    return res


def _work(args: tuple[str, dict[str, Any], bool, bool]) -> Result:
    return run_one(*args)


def pct(a: int, b: int) -> str:
    return f"{a}/{b} = {100 * a / b:.1f}%" if b else "0/0"


def summarize(results: list[Result], types: tuple[str, ...]) -> list[str]:
    rs = [r for r in results if r.prog_type in types]
    n = len(rs)
    v = sum(r.verdict_ok for r in rs)
    mt = [r for r in rs if r.msgs_expected]
    m = sum(bool(r.msgs_ok) for r in mt)
    rt = [r for r in rs if r.retval_expected and r.accepted]
    rv = sum(bool(r.retval_ok) for r in rt)
    not_run = sum(r.retval_ok is None for r in rt)
    crashes = sum(r.error.startswith("CRASH") for r in rs)
    xt = [r for r in rs if r.xlated_expected]
    x = sum(bool(r.xlated_ok) for r in xt)
    return [
        f"  programs tried:     {n}",
        f"  verdict agreement:  {pct(v, n)}",
        f"  message agreement:  {pct(m, len(mt))}",
        f"  xlated agreement:   {pct(x, len(xt))} (__xlated patterns against pybpf's post-fixup program)",
        f"  retval agreement:   {pct(rv, len(rt))} (accepted tests with a retval; {not_run} could not run)",
        f"  crashes:            {crashes}",
    ]


def summarize_soundness(results: list[Result], types: tuple[str, ...]) -> list[str]:
    rs = [r for r in results if r.prog_type in types and r.accepted]
    ran = [r for r in rs if r.sound_runs]
    faulty = [r for r in ran if r.sound_faults]
    return [
        f"  programs run:       {len(ran)} of {len(rs)} accepted ({len(rs) - len(ran)} could not run)",
        f"  runs:               {sum(r.sound_runs for r in ran)}",
        f"  memory faults:      {sum(len(r.sound_faults) for r in faulty)} in {len(faulty)} programs",
        f"  other vm errors:    {sum(len(r.sound_errors) for r in ran)} in {sum(bool(r.sound_errors) for r in ran)} "
        "programs (runs a kernel completes that the vm refuses)",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=None, help="corpus directory (default: see default_corpus)")
    ap.add_argument("--build", action="store_true", help="build the corpus first when it does not exist")
    ap.add_argument("--only", default="")
    ap.add_argument("--types", default=",".join(MAIN_TYPES + OTHER_TYPES))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json")
    ap.add_argument("--write-results", action="store_true")
    ap.add_argument("--show-failures", type=int, default=0)
    ap.add_argument("--soundness", action="store_true",
                    help="also run every accepted program in the interpreter on random inputs")
    args = ap.parse_args()
    args.corpus = args.corpus or default_corpus()
    if args.build:
        ensure_corpus(args.corpus)
    if not (args.corpus / "manifest.json").exists():
        sys.exit(f"no verifier selftest corpus at {args.corpus}: run with --build (make score) or set PYBPF_VST")
    manifest = json.loads((args.corpus / "manifest.json").read_text())
    types = tuple(args.types.split(","))
    specs = [s for s in manifest["programs"] if not s["auxiliary"] and s["privileged"]
             and s["prog_type"] in types and args.only in f"{s['object']}:{s['function']}"
             and s.get("arch") in (None, "X86_64")]
    uspecs = [s for s in manifest["programs"] if not s["auxiliary"] and s["unprivileged"]
              and s["prog_type"] in types and args.only in f"{s['object']}:{s['function']}"
              and s.get("arch") in (None, "X86_64")]
    t0 = time.monotonic()
    corpus = str(args.corpus)
    work = [(corpus, s, False, args.soundness) for s in specs] + [(corpus, s, True, False) for s in uspecs]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as ex:
            results = list(ex.map(_work, work, chunksize=8))
    else:
        results = [_work(w) for w in work]
    elapsed = time.monotonic() - t0
    unpriv_results = [r for r in results if r.unpriv]
    results = [r for r in results if not r.unpriv]
    lines = [f"pybpf verifier scoreboard — Linux 6.12 verifier selftests ({args.corpus})", ""]
    lines.append("XDP + socket filter + tc (sched_cls, sched_act):")
    lines += summarize(results, MAIN_TYPES)
    for t in OTHER_TYPES:
        if t in types:
            lines.append(f"{t}:")
            lines += summarize(results, (t,))
    lines.append("all supported types:")
    lines += summarize(results, types)
    if unpriv_results:
        lines.append("unprivileged loads (no capabilities; the tests marked __success_unpriv/__failure_unpriv):")
        lines += summarize(unpriv_results, types)[:3] + summarize(unpriv_results, types)[5:]
    if args.soundness:
        sizes = ", ".join(map(str, SOUND_PACKET_SIZES))
        lines.append(f"soundness (accepted programs in the reference interpreter on random inputs: packets of {sizes}")
        lines.append("bytes with random context fields, random plain contexts for tracing types; array maps random")
        lines.append("in half the runs; a memory fault is a verifier bug):")
        lines.append("  XDP + socket filter + tc:")
        lines += ["  " + x for x in summarize_soundness(results, MAIN_TYPES)]
        lines.append("  all supported types:")
        lines += ["  " + x for x in summarize_soundness(results, types)]
    lines.append("")
    lines.append(f"{'object':45} {'progs':>5} {'verdict':>8} {'msgs':>8} {'xlated':>8}")
    per: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        per[r.object].append(r)
    for obj in sorted(per):
        rs = per[obj]
        mt = [r for r in rs if r.msgs_expected]
        xt = [r for r in rs if r.xlated_expected]
        lines.append(f"{obj:45} {len(rs):5} {sum(r.verdict_ok for r in rs):8} "
                     f"{sum(bool(r.msgs_ok) for r in mt):4}/{len(mt):<3} "
                     f"{sum(bool(r.xlated_ok) for r in xt):4}/{len(xt):<3}")
    lines.append("")
    lines.append(f"elapsed {elapsed:.0f}s")
    text = "\n".join(lines)
    print(text)
    for r in results:
        for fault in r.sound_faults[:3]:
            print(f"SOUNDNESS {r.object}:{r.function}: {fault}")
        for err in r.sound_errors[:1]:
            print(f"VM ERROR {r.object}:{r.function}: {err}")
    if args.show_failures:
        shown = 0
        for r in results + unpriv_results:
            if (not r.verdict_ok or r.msgs_ok is False or r.xlated_ok is False) and shown < args.show_failures:
                shown += 1
                print(f"--- {r.object}:{r.function}{' (unpriv)' if r.unpriv else ''} expect={r.expect} "
                      f"accepted={r.accepted} "
                      f"msgs_ok={r.msgs_ok} xlated_ok={r.xlated_ok} {r.error}")
                for line in r.log_tail:
                    print("    " + line)
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ | {"verdict_ok": r.verdict_ok}
                                               for r in results + unpriv_results], indent=1))
    if args.write_results:
        out = Path(__file__).resolve().parent / "results" / "verifier_score.txt"
        out.parent.mkdir(exist_ok=True)
        out.write_text(text + "\n")


if __name__ == "__main__":
    main()
