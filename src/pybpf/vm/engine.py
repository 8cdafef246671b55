"""What the two vm tiers have in common: construction, ``run()``, tail-call targets, callbacks, LD_ABS.

Both :class:`pybpf.vm.interp.Interpreter` and :class:`pybpf.vm.translate.TranslatedProgram` are
built the same way and run the same way::

    engine = Interpreter(insns, maps={7: counter_map}, helpers=table, space=space)
    r0 = engine.run(r1=ctx_address, env=run_env)          # one run; returns r0 as u64

``insns`` may also be a loaded program (``.insns`` + ``.used_maps``). The engine prepares once
(:func:`pybpf.vm.program.prepare`: map regions registered, ``lddw`` values resolved) and can run many
times. Entry registers: r1..r5 as given (default 0), r0 and r6..r9 zero, r10 the top of a zeroed
512-byte frame.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any, ClassVar

from pybpf.errors import ExecutionError, PybpfError
from pybpf.isa.insn import Insns
from pybpf.vm.execution import Execution, SkbView, err_no_skb
from pybpf.vm.helpers import Helper, HelperTable, ProgramExit
from pybpf.vm.memory import AddressSpace
from pybpf.vm.program import Layout, ProgramLike, prepare
from pybpf.vm.semantics import M64, sext

__all__ = ["SKF_LL_OFF", "SKF_NET_OFF", "Engine", "ld_abs"]

SKF_NET_OFF = -0x100000  # include/uapi/linux/filter.h
SKF_LL_OFF = -0x200000


class Engine:
    """Base of the vm tiers. Subclasses implement ``_setup``, ``_run`` and ``call_function``."""

    tier: ClassVar[str] = ""

    def __init__(
        self,
        program: Insns | ProgramLike,
        *,
        maps: Mapping[int, Any] | None = None,
        helpers: HelperTable | Mapping[int, Helper] | None = None,
        space: AddressSpace | None = None,
        name: str = "",
    ) -> None:
        if isinstance(program, Insns):
            insns = program
        else:
            insns = program.insns
            if maps is None:
                maps = program.used_maps
        self.insns = insns
        self.name = name
        self.space = space if space is not None else AddressSpace()
        self.helpers = HelperTable.of(helpers)
        self.layout: Layout = prepare(insns, self.space, maps, name=name)
        code = self.layout.code_region
        if code is not None:  # callbacks find the engine through the region; the engine frees it
            code.owner = weakref.ref(self)
            weakref.finalize(self, self.space.remove, code)
        self._tail_targets: dict[int, tuple[Any, Engine]] = {}
        self._setup()

    # -- subclass interface -------------------------------------------------------------------------
    def _setup(self) -> None:
        """Tier-specific preparation (decode tables, translation)."""

    def _run(self, ex: Execution, args: tuple[int, int, int, int, int]) -> int:
        """Run the main function at depth 0; return r0."""
        raise NotImplementedError

    def call_function(self, ex: Execution, slot: int, args: tuple[int, ...], depth: int) -> int:
        """Run the function starting at raw slot ``slot`` at call depth ``depth``; return r0."""
        raise NotImplementedError

    # -- running ------------------------------------------------------------------------------------------
    def run(
        self,
        r1: int = 0,
        r2: int = 0,
        r3: int = 0,
        r4: int = 0,
        r5: int = 0,
        *,
        env: Any = None,
        budget: int | None = None,
        skb: SkbView | None = None,
        execution: Execution | None = None,
    ) -> int:
        """Run once and return r0 (unsigned 64-bit). Faults raise :class:`~pybpf.errors.ExecutionError`
        subclasses; pass ``execution`` to read counters (``insn_count``) afterwards."""
        ex = execution if execution is not None else Execution(self.space, env=env, budget=budget, skb=skb)
        if ex.space is not self.space:
            raise ValueError("the execution belongs to another address space than this engine")
        ex.engine = self
        args = (r1 & M64, r2 & M64, r3 & M64, r4 & M64, r5 & M64)
        try:
            return self._run(ex, args) & M64
        except ProgramExit as stop:
            return stop.value & M64
        except PybpfError:
            raise
        except RecursionError as e:
            raise ExecutionError("nesting too deep (tail calls inside callbacks?)", pc=ex.pc) from e
        except Exception as e:  # a bug in a helper (or the engine): keep it structured, keep the cause
            raise ExecutionError(f"unexpected {type(e).__name__} during execution: {e}", pc=ex.pc) from e
        finally:
            ex.close_frames()

    def tail_target(self, program: Any) -> Engine:
        """The engine (same tier, same space and helpers) that runs tail-call target ``program``."""
        key = id(program)
        hit = self._tail_targets.get(key)
        if hit is not None and hit[0] is program:
            return hit[1]
        engine = type(self)(program, helpers=self.helpers, space=self.space, name=getattr(program, "name", ""))
        self._tail_targets[key] = (program, engine)
        return engine

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name or 'prog'}, {self.layout.n_slots} slots)"


def ld_abs(ex: Execution, offset: int, size: int, pc: int) -> int | None:
    """Linux 6.12's legacy packet load (``bpf_skb_load_helper_{8,16,32}``): the big-endian value of
    ``size`` bytes at packet ``offset`` (an ``int``: the low 32 bits, signed), or None when out of range
    (the rewritten program then returns 0).

    A negative offset is first made relative to ``data`` as ``bpf_skb_load_helper_convert_offset``
    does: ``[SKF_NET_OFF, 0)`` counts from the network header, ``[SKF_LL_OFF, SKF_NET_OFF)`` from the
    MAC header (refused when the skb has none), anything lower is out of range. Linux then only
    checks the end (``headlen - offset >= size``): the converted offset may be negative — a socket
    filter's MAC header lies before ``data`` — and is read from the skb's head, in front of the
    packet. So is ours: the bytes before ``data`` come from the buffer behind the packet's region
    (see :class:`~pybpf.vm.execution.SkbView`).
    """
    skb = ex.skb
    if skb is None:
        raise err_no_skb(pc)
    off = sext(offset, 32)
    if off < 0:
        base: int | None = None
        if off >= SKF_NET_OFF:
            base, off = skb.network_offset, off - SKF_NET_OFF
        elif off >= SKF_LL_OFF:
            base, off = skb.mac_offset, off - SKF_LL_OFF
        if base is None:
            return None
        off += base
    if skb.headlen - off < size:
        return None
    if off >= 0:
        return int.from_bytes(ex.space.read(skb.data + off, size, pc=pc), "big")
    return _load_before_data(ex, skb, off, size, pc)


def _load_before_data(ex: Execution, skb: SkbView, off: int, size: int, pc: int) -> int | None:
    """Bytes at ``data + off`` with ``off < 0`` (an SKF_LL_OFF read of a pulled MAC header): read from
    the buffer of the packet's region, whose index 0 is the skb's head. Before the head there is
    nothing (None: out of range, as a pointer below ``skb->head`` would be)."""
    region = ex.space.find(skb.data)
    if region is None:
        return None
    index = (skb.data - region.base) + off
    if index < 0 or index + size > len(region.buf):
        return None
    return int.from_bytes(region.buf[index:index + size], "big")
