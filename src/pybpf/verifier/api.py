"""The verifier's entry point: :func:`verify` (what ``BPF_PROG_LOAD`` calls).

    >>> from pybpf.verifier import verify
    >>> prog = verify(insns, prog_type=ProgType.XDP, maps={fd: map_obj}, log_level=1)
    >>> prog.insns          # after the fixups: what the interpreter and the JIT run
    >>> prog.log            # the kernel's log text

A rejected program raises :class:`pybpf.errors.VerifierError` with the errno Linux returns
(``EACCES`` for unsafe programs, ``EINVAL`` for malformed ones, ``E2BIG`` for too complex ones),
the full log, the instruction index and its source line.
"""

from __future__ import annotations

import errno as E
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pybpf.errors import IsaError, VerifierError
from pybpf.isa import Insn, Insns
from pybpf.progtypes import CAP_BPF, CAP_PERFMON, ProgInfo, ProgTypeDescriptor, descriptor
from pybpf.uapi import ProgType
from pybpf.verifier.env import BPF_COMPLEXITY_LIMIT_INSNS, Reject, VerifierEnv
from pybpf.verifier.log import Msg

__all__ = ["VerifiedProgram", "kernel_verify", "verify"]

BPF_F_STRICT_ALIGNMENT = 1
BPF_F_ANY_ALIGNMENT = 2
BPF_F_TEST_RND_HI32 = 4
BPF_F_TEST_STATE_FREQ = 8
BPF_F_SLEEPABLE = 16
BPF_F_XDP_HAS_FRAGS = 32
BPF_F_XDP_DEV_BOUND_ONLY = 64
BPF_F_TEST_REG_INVARIANTS = 128
_KNOWN_FLAGS = 0xFF


@dataclass
class VerifiedProgram:
    """An accepted program after the verifier's rewrites (contract 1 for lddw, contract 2 for
    internal calls, converted context accesses).

    ``insns`` is the post-load stream; ``orig_insns`` what was submitted; ``used_maps`` maps a map
    id to its map object; ``stack_depth`` is per subprogram (bytes); ``subprog_starts`` the first
    instruction of each subprogram in ``insns``; ``log`` the verifier log (empty at level 0).
    """

    insns: Insns
    orig_insns: Insns
    prog_type: int
    used_maps: dict[int, Any]
    log: str
    insn_processed: int
    stack_depth: list[int]
    subprog_starts: list[int]
    max_states_per_insn: int = 0
    total_states: int = 0
    peak_states: int = 0
    has_tail_call: bool = False
    changes_pkt_data: bool = False
    seen_direct_write: bool = False
    max_pkt_offset: int = 0
    max_ctx_offset: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def verified_insns(self) -> int:
        """``prog->aux->verified_insns`` (what bpftool reports as ``verified_insns``)."""
        return self.insn_processed

    @property
    def extra(self) -> dict[str, Any]:
        """Facts the kernel layer keeps on the program (bpf_prog_aux fields)."""
        return {
            "stack_depth": self.stack_depth,
            "subprog_starts": self.subprog_starts,
            "has_tail_call": self.has_tail_call,
            "changes_pkt_data": self.changes_pkt_data,
            "max_pkt_offset": self.max_pkt_offset,
            "max_ctx_offset": self.max_ctx_offset,
        }


def _as_insns(insns: Insns | Iterable[Insn] | bytes | bytearray) -> list[Insn]:
    if isinstance(insns, (bytes, bytearray, memoryview)):
        try:
            return list(Insns.from_bytes(insns, strict=False))
        except IsaError as e:
            # a program whose length is not a multiple of 8 or that ends inside an lddw
            msg = Msg.UNRECOGNIZED_LD_IMM64_TAIL if "lddw" in str(e) else Msg.INVALID_PROGRAM_LENGTH
            raise VerifierError(E.EINVAL, msg, log=msg + "\n", insn_idx=e.insn_idx) from None
    return list(insns)


def _stats_line(env: VerifierEnv) -> str:
    return Msg.STATS.format(env.insn_processed, BPF_COMPLEXITY_LIMIT_INSNS, env.max_states_per_insn,
                            env.total_states, env.peak_states, env.longest_mark_read_walk)


def verify(
    insns: Insns | Iterable[Insn] | bytes,
    *,
    prog_type: int = ProgType.SOCKET_FILTER,
    maps: Mapping[int, Any] | None = None,
    prog_flags: int = 0,
    log_level: int = 0,
    unprivileged: bool = False,
    caps: Iterable[str] | None = None,
    expected_attach_type: int = 0,
    prog_name: str = "",
    gpl: bool = True,
    func_info: Sequence[tuple[Any, ...]] | None = None,
    btf: Any = None,
    desc: ProgTypeDescriptor | None = None,
    attach_btf_id: int = 0,
    liveness_marks: bool = True,
    fd_array: Sequence[int] | None = None,
    deadline: float | None = None,
) -> VerifiedProgram:
    """Verify a program as Linux 6.12's ``bpf_check`` does, then apply the fixups.

    ``maps`` maps the value an lddw carries (the map fd, as in PROG_LOAD) to the map object
    (:class:`~pybpf.verifier.env.MapLike`). ``func_info`` lists ``(insn_idx, name, is_global)`` per
    function from BTF func info (static functions are verified inline, global ones on their own),
    optionally with a 4th element, the FUNC's type id in ``btf`` (the program's
    :class:`~pybpf.btf.BtfSpec`; without the id the FUNC is found by name). With ``btf`` the
    prototypes decide a global function's argument types (pointer to ctx, to memory of the pointee's
    size, ``__arg_*`` tags) as ``btf_prepare_func_args`` does; without it they are five scalars.
    Source lines for the log come from each instruction's ``meta.source``. ``liveness_marks=False``
    prints registers without the 6.12 ``_w``/``_r`` suffixes (the 6.18 log style). ``caps`` sets
    the loader's capabilities (default ``{"CAP_BPF", "CAP_PERFMON"}``; ``unprivileged=True`` means
    none; CAP_BPF alone gives bpf_capable without pointer leaks / uninit stack). ``deadline``
    (a ``time.monotonic()`` value) is a pybpf guard, not a kernel rule: past it the walk stops with
    ``ETIME``.
    """
    insn_list = _as_insns(insns)
    if desc is None:
        desc = descriptor(prog_type)
    if caps is None:
        caps = frozenset() if unprivileged else frozenset({CAP_BPF, CAP_PERFMON})
    else:
        caps = frozenset() if unprivileged else frozenset(caps)
    prog = ProgInfo(int(prog_type), expected_attach_type, caps, bool(prog_flags & BPF_F_SLEEPABLE), attach_btf_id)
    if prog_flags & ~_KNOWN_FLAGS:
        raise VerifierError(E.EINVAL, Msg.INVALID_PROG_FLAGS, program=prog_name)
    if CAP_BPF not in caps and not desc.unpriv:
        raise VerifierError(E.EPERM, Msg.TYPE_NEEDS_CAP_BPF, program=prog_name)
    if not insn_list:
        raise VerifierError(E.EINVAL, Msg.EMPTY_PROGRAM, program=prog_name)
    # bpf_prog_load's size limit: 1M instructions with CAP_BPF, BPF_MAXINSNS (4096) without
    if len(insn_list) > (BPF_COMPLEXITY_LIMIT_INSNS if CAP_BPF in caps else 4096):
        raise VerifierError(E.E2BIG, Msg.PROGRAM_TOO_LARGE, program=prog_name)
    env = VerifierEnv(insn_list, desc=desc, prog=prog, log_level=log_level, prog_flags=prog_flags,
                      maps=dict(maps or {}), unprivileged=unprivileged, liveness_marks=liveness_marks, gpl=gpl)
    env.deadline = deadline
    env.btf = btf
    if fd_array is not None:
        env.fd_array = list(fd_array)  # type: ignore[attr-defined]
    for idx, insn in enumerate(env.insns):
        if insn is not None and insn.meta.source is not None:
            env.linfo_by_idx[idx] = insn.meta.source
    from pybpf.verifier.fixups import apply_fixups

    try:
        _run(env, func_info)
        # the rewrites can still refuse (e.g. an unprivileged tail call through mixed maps)
        new_insns, subprog_starts = apply_fixups(env)
    except Reject as r:
        env.log.write(_stats_line(env)) if log_level else None
        msg = "".join(env.recent).strip().splitlines()
        message = r.message or (msg[-1] if msg else Msg.REJECTED)
        src = env.linfo_by_idx.get(env.insn_idx)
        raise VerifierError(
            r.errno,
            message,
            log=env.log.text(),
            insn_idx=env.insn_idx,
            source_line=f"{src.text.strip()} @ {src.file.rsplit('/', 1)[-1]}:{src.line}" if src else None,
            program=prog_name or None,
        ) from None
    if log_level:
        if log_level & 4:
            env.log.write(Msg.LEVEL4_STATS.format("+".join(str(s.stack_depth) for s in env.subprog_info)))
        env.log.write(_stats_line(env))
    used = {getattr(m, "id", i): m for i, m in enumerate(env.used_maps)}
    return VerifiedProgram(
        insns=Insns(new_insns),
        orig_insns=Insns(insn_list),
        prog_type=int(prog_type),
        used_maps=used,
        log=env.log.text(),
        insn_processed=env.insn_processed,
        stack_depth=[s.stack_depth for s in env.subprog_info],
        subprog_starts=subprog_starts,
        max_states_per_insn=env.max_states_per_insn,
        total_states=env.total_states,
        peak_states=env.peak_states,
        has_tail_call=env.has_tail_call,
        changes_pkt_data=env.changes_pkt_data,
        seen_direct_write=env.seen_direct_write,
        max_pkt_offset=env.max_pkt_offset,
        max_ctx_offset=env.max_ctx_offset,
    )


def _func_type_id(env: VerifierEnv, entry: tuple[Any, ...]) -> int:
    if len(entry) > 3 and entry[3]:
        return int(entry[3])
    if env.btf is None:
        return 0
    try:
        from pybpf.btf import BtfKind

        ids = env.btf.find(entry[1], BtfKind.FUNC)
    except Exception:
        return 0
    return int(ids[0]) if ids else 0


def _check_btf_func(env: VerifierEnv) -> None:
    """``check_btf_func``: LD_ABS and tail calls need an int-returning subprogram."""
    from pybpf.verifier.funcargs import returns_scalar

    if env.btf is None:
        return
    for i, s in enumerate(env.subprog_info):
        if not i or not s.btf_type_id or returns_scalar(env.btf, s.btf_type_id):
            continue
        if s.has_ld_abs:
            raise env.fail(E.EINVAL, Msg.LD_ABS_IS_ONLY_ALLOWED_IN)
        if s.has_tail_call:
            raise env.fail(E.EINVAL, Msg.TAIL_CALL_IS_ONLY_ALLOWED_IN)


def _run(env: VerifierEnv, func_info: Sequence[tuple[Any, ...]] | None) -> None:
    from pybpf.verifier.cfg import (
        add_subprogs,
        check_cfg,
        check_max_stack_depth,
        check_subprogs,
        resolve_pseudo_ldimm64,
    )
    from pybpf.verifier.fastcall import mark_fastcall_patterns, remove_fastcall_spills_fills
    from pybpf.verifier.walk import do_check_main, do_check_subprogs

    add_subprogs(env)
    check_subprogs(env)
    if func_info:
        env.has_func_info = True
        by_start = {s.start: s for s in env.subprog_info}
        for entry in func_info:
            start, name, is_global = entry[0], entry[1], entry[2]
            s = by_start.get(start)
            if s is not None:
                s.name = name
                s.is_global = bool(is_global) and start != 0
                s.btf_type_id = _func_type_id(env, entry)
        _check_btf_func(env)
    for s in env.subprog_info:
        if not s.name:
            s.name = f"func#{env.subprog_info.index(s)}"
    resolve_pseudo_ldimm64(env)
    check_cfg(env)
    mark_fastcall_patterns(env)
    do_check_main(env)
    do_check_subprogs(env)
    # may lower stack depths: before the check of the combined stack size, as Linux
    remove_fastcall_spills_fills(env)
    check_max_stack_depth(env)


def kernel_verify(*, kernel: Any, attrs: Any, desc: ProgTypeDescriptor, info: ProgInfo, gpl: bool,
                  maps: Mapping[int, Any]) -> VerifiedProgram:
    """The kernel layer's PROG_LOAD call site (``pybpf.kernel.prog_load.run_verifier``): decoded
    PROG_LOAD attributes in, the post-fixup program out (``insns``, ``used_maps``, ``log``,
    ``verified_insns``, ``extra``). Raises :class:`VerifierError` as :func:`verify` does."""
    del kernel
    return verify(
        attrs.insns,
        prog_type=info.prog_type,
        maps=maps,
        prog_flags=attrs.prog_flags,
        log_level=attrs.log_level,
        caps=info.caps,
        expected_attach_type=info.expected_attach_type,
        prog_name=getattr(attrs, "name", "") or "",
        gpl=gpl,
        desc=desc,
        attach_btf_id=info.attach_btf_id,
        fd_array=getattr(attrs, "fd_array", None),
        func_info=getattr(attrs, "func_info", None),
        btf=getattr(attrs, "prog_btf", None),
    )
