"""Every verifier-accepted program of the Linux 6.12 verifier-selftest corpus (XDP, socket filter, tc
types) run under the JIT and under the interpreter on a few packets — the driver of
``test_verifier_corpus.py``, run in a subprocess so that a crash of JIT code is a test failure with the
program's name, not a dead test runner.

    python tests/jit/corpus_runs.py [CORPUS] [--limit N]

Each program is loaded through the kernel layer as the selftests' loader does (bench/verifier_score.py's
``loaded``: the object's maps, prog arrays, pybpf's verifier and fixups); a program pybpf's verifier
refuses (or that needs a piece the kernel layer lacks) is counted as not loaded. Every packet goes through
``BPF_PROG_TEST_RUN`` on the interpreter, then — with the program's maps restored to what they held before
— on the JIT (``engine="jit"``: the JIT engine's batch runner). Return values and packets out must agree,
except for programs whose result depends on the clock, randomness or the CPU. An interpreter memory fault
(the verifier accepted an unsafe program) is recorded and the JIT is not run on that input.

Progress goes to stderr (``RUN <object>:<function>`` before each JIT run); the summary is one JSON
object on stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TYPES = ("socket_filter", "sched_cls", "sched_act", "xdp")
INTERP_BUDGET = 2_000_000
"""Instructions an interpreter run may take here (the selftests' loops are short; a program that
needs more is counted as too long to compare, not run on the JIT)."""
NONDETERMINISTIC = {5, 7, 8, 118, 125, 160, 208}
"""ktime_get_ns, get_prandom_u32, get_smp_processor_id, jiffies64, ktime_get_boot_ns,
ktime_get_coarse_ns, ktime_get_tai_ns: their callers' results may differ from run to run."""
ADDRESS_DEPENDENT = {
    "verifier_basic_stack.o:uninitialized_stack2": "reads stack it never wrote (the vm zeroes frames; the "
                                                   "kernel and the JIT do not)",
    "verifier_raw_stack.o:stack_no_skb_load_bytes": "returns stack it never wrote",
    "verifier_helper_access_var_len.o:ptr_to_mem_or_null_7": "returns a packet pointer when the packet's first "
                                                             "8 bytes exceed 8",
    "verifier_direct_packet_access.o:direct_packet_access_test4_write": "stores a packet pointer's low byte",
    "verifier_direct_packet_access.o:test18_imm_pkt_ptr_1": "stores a packet pointer's low byte",
    "verifier_direct_packet_access.o:test19_imm_pkt_ptr_2": "stores a packet pointer's low byte",
    "verifier_unpriv.o:pass_pointer_to_tail_call": "uses the context pointer as the tail-call index (u32): slot 0 "
                                                   "for the vm's addresses, out of range for real ones",
    "verifier_ref_tracking.o:tracking_direct_access_for_lookup": "returns a packet pointer when the packet is "
                                                                 "shorter than 64 bytes",
}
"""Programs whose result depends on where memory is or on memory they never wrote: the engines
legitimately differ (the selftests' own ``POINTER_VALUE`` programs are recognised from the manifest)."""
def _scorer() -> ModuleType:
    path = ROOT / "bench" / "verifier_score.py"
    spec = importlib.util.spec_from_file_location("verifier_score", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _packets(prog_type: str, rng: random.Random) -> list[bytes]:
    """Zeros (the selftests' input), then random frames of a few sizes."""
    out = [bytes(64)]
    for n in (14, 60, 200, 1500):
        frame = bytearray(rng.randbytes(n))
        frame[12:14] = rng.choice((b"\x08\x00", b"\x86\xdd", b"\x81\x00", frame[12:14]))
        out.append(bytes(frame))
    return out


def _limit_interpreter_budget() -> None:
    """The vm engines' runs in this process stop after INTERP_BUDGET instructions."""
    from pybpf.kernel import engines

    real = engines.Runner.run

    def run(self: Any, r1: int = 0, *, env: Any = None, skb: Any = None, budget: int | None = None) -> int:
        if self.engine != "jit" and budget is None:
            budget = INTERP_BUDGET
        return real(self, r1, env=env, skb=skb, budget=budget)

    engines.Runner.run = run  # type: ignore[method-assign]


def _calls(program: Any) -> set[int]:
    return {i.imm & 0xFFFF_FFFF for i in program.insns if i.code == 0x85 and i.src == 0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("corpus", nargs="?", default=None)
    ap.add_argument("--limit", type=int, default=0, help="only the first N programs (0: all)")
    args = ap.parse_args(argv)
    score = _scorer()
    corpus = Path(args.corpus or score.default_corpus())
    if not (corpus / "manifest.json").exists():
        print(json.dumps({"skip": f"verifier selftest corpus not built ({corpus}; make score builds it)"}))
        return 0
    manifest = json.loads((corpus / "manifest.json").read_text())

    from pybpf.elf import ObjectSpec
    from pybpf.errors import InstructionLimitExceeded, MemoryFault, PybpfError
    from pybpf.kernel.test_run import test_run

    _limit_interpreter_budget()
    specs = [s for s in manifest["programs"] if s["prog_type"] in TYPES and not s["auxiliary"] and s["privileged"]
             and s.get("arch") in (None, "X86_64")]
    if args.limit:
        specs = specs[:args.limit]
    summary: dict[str, Any] = {"programs": len(specs), "loaded": 0, "not_loaded": 0, "jit_runs": 0, "agree": 0,
                               "nondeterministic": 0, "address_dependent": 0,
                               "both_failed": 0, "interp_too_long": 0, "unsound": [], "mismatches": []}
    objects: dict[str, Any] = {}
    k = score._kernel()
    for spec in specs:
        name = f"{spec['object']}:{spec['function']}"
        obj = objects.get(spec["object"])
        if obj is None:
            obj = objects[spec["object"]] = ObjectSpec.from_path(str(corpus / "obj" / spec["object"]))
        prog = obj.programs.get(spec["function"])
        if prog is None:
            summary["not_loaded"] += 1
            continue
        rng = random.Random(name)
        try:
            with score.loaded(spec, obj, prog, score.flags_of(spec) | prog.prog_flags) as program:
                summary["loaded"] += 1
                maps = [m for m in program.used_maps.values() if getattr(m, "storage", None) is not None]
                for pkt in _packets(spec["prog_type"], rng):
                    saved = [bytes(m.storage) for m in maps]
                    try:
                        ref: Any = test_run(k, program, pkt, engine="interpreter")
                    except MemoryFault as e:
                        summary["unsound"].append(f"{name} ({len(pkt)} B): {e}")
                        continue
                    except InstructionLimitExceeded:
                        summary["interp_too_long"] += 1
                        continue
                    except PybpfError as e:
                        ref = e
                    for m, raw in zip(maps, saved, strict=True):
                        m.storage[:len(raw)] = raw
                    print(f"RUN {name} {len(pkt)}", file=sys.stderr, flush=True)
                    try:
                        got: Any = test_run(k, program, pkt, engine="jit")
                    except PybpfError as e:
                        got = e
                    summary["jit_runs"] += 1
                    if isinstance(ref, Exception) or isinstance(got, Exception):
                        if type(ref) is type(got) and getattr(ref, "errno", None) == getattr(got, "errno", None):
                            summary["both_failed"] += 1
                        else:
                            summary["mismatches"].append(f"{name} ({len(pkt)} B): interpreter {ref!r}, jit {got!r}")
                        continue
                    if (ref.retval, ref.data_out) == (got.retval, got.data_out):
                        summary["agree"] += 1
                    elif _calls(program) & NONDETERMINISTIC:
                        summary["nondeterministic"] += 1
                    elif name in ADDRESS_DEPENDENT or spec["retval"] == "POINTER_VALUE":
                        summary["address_dependent"] += 1
                    else:
                        same = "same" if ref.data_out == got.data_out else "differs"
                        summary["mismatches"].append(f"{name} ({len(pkt)} B): retval {ref.retval} vs {got.retval}, "
                                                     f"data_out {same}")
        except score.CouldNotLoad:
            summary["not_loaded"] += 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
