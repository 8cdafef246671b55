#!/usr/bin/env python3
"""The verifier scoreboard: pybpf's verifier against the Linux 6.12 verifier selftests.

usage: bench/verifier_score.py [--corpus DIR] [--only SUBSTRING] [--types T,T] [--jobs N]
                               [--json OUT] [--write-results] [--show-failures N]

For every non-auxiliary, privileged test of the supported program types in DIR/manifest.json
(default /work/vst, or $PYBPF_VST), loads its object with pybpf's ELF reader, creates its maps,
and verifies only that program (plus the object's auxiliary programs, which the kernel harness
loads alongside but which do not count) with the manifest's flags (+ BPF_F_TEST_RND_HI32 and
BPF_F_TEST_REG_INVARIANTS, as test_loader does) and log level. Reports:

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
import sys
import time
from collections import defaultdict
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
    retval_expected: bool = False
    retval_ok: bool | None = None
    error: str = ""
    seconds: float = 0.0
    log_tail: list[str] = field(default_factory=list)
    unpriv: bool = False

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


def run_retval(spec: dict[str, Any], obj: Any, prog: Any, flags: int) -> bool | None:
    """test_loader's run: the program loaded through the kernel layer (maps created and filled as
    libbpf does, the verifier's rewrites applied), run once with 64 zero bytes; compare r0.
    Returns None when the kernel layer cannot run it (no test_run for the type, missing pieces)."""
    from pybpf.errors import PybpfError
    from pybpf.kernel import MapAttrs
    from pybpf.kernel.prog_load import LoadAttrs, prog_load
    from pybpf.kernel.test_run import test_run

    want = spec["retval"]
    if want == "POINTER_VALUE":
        expected = None
    else:
        expected = RETVAL_NAMES.get(want)
        if expected is None:
            expected = int(want, 0)
    k = _kernel()
    fds: dict[str, int] = {}
    maps: dict[int, Any] = {}
    extra_fds: list[int] = []
    try:
        for name, ms in obj.maps.items():
            inner = None
            if ms.inner_map is not None:
                im = ms.inner_map
                inner = k.create_map(MapAttrs(int(im.type), im.key_size, im.value_size, im.max_entries, im.flags))
            from pybpf.verifier.specmaps import special_fields_from_btf

            lock = [off for kind, off, _ in special_fields_from_btf(obj.btf, ms.value_type_id)
                    if kind == "bpf_spin_lock"]
            attrs = MapAttrs(int(ms.type), ms.key_size, ms.value_size, ms.max_entries, ms.flags, name=name[:15],
                             inner_map=inner, spin_lock_off=lock[0] if lock else None)
            try:
                m = k.create_map(attrs)
            except PybpfError:
                # a map type the kernel layer lacks: fine as long as this program does not use it
                # (its fd then names no map and the load fails, which counts as "could not run")
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
                tres = prog_load(k, ta)
                tfd = k.new_fd(tres.program)
                extra_fds.append(tfd)
                maps[fds[name]].update_elem_sys(index.to_bytes(4, "little"), tfd.to_bytes(4, "little"), 0)
        a = LoadAttrs(prog_type=int(prog.prog_type), insns=prog.with_map_fds(fds), license="GPL",
                      name=prog.name[:15], expected_attach_type=int(prog.expected_attach_type or 0),
                      prog_flags=flags, maps=maps, func_info=func_info_of(prog) or None, prog_btf=prog.btf)
        res = prog_load(k, a)
        run = test_run(k, res.program, bytes(64), repeat=1)
    except Exception as e:  # PybpfError and whatever else the kernel layer lacks: "could not run"
        if os.environ.get("PYBPF_SCORE_DEBUG"):
            import traceback

            traceback.print_exception(e)
        return None
    finally:
        for fd in [*fds.values(), *extra_fds]:
            with contextlib.suppress(Exception):
                k.close(fd)
    if expected is None:
        return True
    return (run.retval & 0xFFFFFFFF) == (expected & 0xFFFFFFFF)


def run_one(corpus: str, spec: dict[str, Any], unpriv: bool = False) -> Result:
    from pybpf.elf import ObjectSpec
    from pybpf.errors import PybpfError, VerifierError
    from pybpf.uapi import ProgType
    from pybpf.verifier import verify
    from pybpf.verifier.specmaps import maps_from_specs

    if unpriv:
        # the same program loaded without capabilities: its own verdict and messages (retvals
        # are checked on the privileged load only)
        spec = spec | {"expect": spec["unpriv_expect"], "msgs": spec["unpriv_msgs"], "retval": None}
    res = Result(spec["object"], spec["function"], spec["prog_type"], spec["expect"], None,
                 msgs_expected=bool(spec["msgs"]), retval_expected=spec["retval"] is not None, unpriv=unpriv)
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
        try:
            verify(insns, prog_type=pt, maps=by_fd, prog_flags=flags_of(spec) | prog.prog_flags, log_level=level,
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


def _work(args: tuple[str, dict[str, Any], bool]) -> Result:
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
    return [
        f"  programs tried:     {n}",
        f"  verdict agreement:  {pct(v, n)}",
        f"  message agreement:  {pct(m, len(mt))}",
        f"  retval agreement:   {pct(rv, len(rt))} (accepted tests with a retval; {not_run} could not run)",
        f"  crashes:            {crashes}",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=os.environ.get("PYBPF_VST", "/work/vst"))
    ap.add_argument("--only", default="")
    ap.add_argument("--types", default=",".join(MAIN_TYPES + OTHER_TYPES))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json")
    ap.add_argument("--write-results", action="store_true")
    ap.add_argument("--show-failures", type=int, default=0)
    args = ap.parse_args()
    manifest = json.loads(Path(args.corpus, "manifest.json").read_text())
    types = tuple(args.types.split(","))
    specs = [s for s in manifest["programs"] if not s["auxiliary"] and s["privileged"]
             and s["prog_type"] in types and args.only in f"{s['object']}:{s['function']}"
             and s.get("arch") in (None, "X86_64")]
    uspecs = [s for s in manifest["programs"] if not s["auxiliary"] and s["unprivileged"]
              and s["prog_type"] in types and args.only in f"{s['object']}:{s['function']}"
              and s.get("arch") in (None, "X86_64")]
    t0 = time.monotonic()
    work = [(args.corpus, s, False) for s in specs] + [(args.corpus, s, True) for s in uspecs]
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
        lines += summarize(unpriv_results, types)[:3] + summarize(unpriv_results, types)[4:]
    lines.append("")
    lines.append(f"{'object':45} {'progs':>5} {'verdict':>8} {'msgs':>8}")
    per: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        per[r.object].append(r)
    for obj in sorted(per):
        rs = per[obj]
        mt = [r for r in rs if r.msgs_expected]
        lines.append(f"{obj:45} {len(rs):5} {sum(r.verdict_ok for r in rs):8} "
                     f"{sum(bool(r.msgs_ok) for r in mt):4}/{len(mt):<3}")
    lines.append("")
    lines.append(f"elapsed {elapsed:.0f}s")
    text = "\n".join(lines)
    print(text)
    if args.show_failures:
        shown = 0
        for r in results + unpriv_results:
            if (not r.verdict_ok or r.msgs_ok is False) and shown < args.show_failures:
                shown += 1
                print(f"--- {r.object}:{r.function}{' (unpriv)' if r.unpriv else ''} expect={r.expect} "
                      f"accepted={r.accepted} "
                      f"msgs_ok={r.msgs_ok} {r.error}")
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
