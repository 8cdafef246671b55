"""``BPF_PROG_LOAD``: checks, the verifier, the log buffer, and publishing the program.

:func:`prog_load` is the kernel's ``bpf_prog_load`` on decoded arguments (a :class:`LoadAttrs`);
:func:`prog_load_attr` decodes a ``union bpf_attr`` (instructions, license and log buffer at user
addresses) and writes the log back the way ``bpf_vlog_finalize`` does: the whole log if it fits,
otherwise the *last* ``log_size - 1`` bytes (the first ones with ``BPF_LOG_FIXED``) and ENOSPC, with
``log_true_size`` telling the size that would have been needed.

The verifier runs at exactly one place, :func:`run_verifier`. Until :mod:`pybpf.verifier` offers
its entry point, that function performs only the loader-level rewrites of contract 1 (map fds →
map ids in ``lddw``) — recorded in the project report, not a verifier.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pybpf.errors import BpfError, VerifierError
from pybpf.isa import Insn, Insns
from pybpf.isa.opcodes import PseudoSrc
from pybpf.kernel import native
from pybpf.kernel.maps.base import Map
from pybpf.kernel.objects import check_obj_name
from pybpf.kernel.program import ProgramImage, boottime_ns, license_is_gpl_compatible, prog_tag
from pybpf.progtypes import PRIVILEGED, ProgInfo, descriptor
from pybpf.uapi import AttachType, ProgType

if TYPE_CHECKING:
    from pybpf.kernel.objects import Kernel
    from pybpf.kernel.program import Program

__all__ = ["LoadAttrs", "LoadResult", "finalize_log", "prog_load", "prog_load_attr", "run_verifier"]

BPF_F_STRICT_ALIGNMENT = 1 << 0
BPF_F_ANY_ALIGNMENT = 1 << 1
BPF_F_TEST_RND_HI32 = 1 << 2
BPF_F_TEST_STATE_FREQ = 1 << 3
BPF_F_SLEEPABLE = 1 << 4
BPF_F_XDP_HAS_FRAGS = 1 << 5
BPF_F_XDP_DEV_BOUND_ONLY = 1 << 6
BPF_F_TEST_REG_INVARIANTS = 1 << 7
BPF_F_TOKEN_FD = 1 << 16
PROG_FLAGS_MASK = (BPF_F_STRICT_ALIGNMENT | BPF_F_ANY_ALIGNMENT | BPF_F_TEST_STATE_FREQ | BPF_F_SLEEPABLE
                   | BPF_F_TEST_RND_HI32 | BPF_F_XDP_HAS_FRAGS | BPF_F_XDP_DEV_BOUND_ONLY
                   | BPF_F_TEST_REG_INVARIANTS | BPF_F_TOKEN_FD)
BPF_COMPLEXITY_LIMIT_INSNS = 1_000_000
BPF_LOG_LEVEL1, BPF_LOG_LEVEL2, BPF_LOG_STATS, BPF_LOG_FIXED = 1, 2, 4, 8
BPF_LOG_MASK = BPF_LOG_LEVEL1 | BPF_LOG_LEVEL2 | BPF_LOG_STATS | BPF_LOG_FIXED
BTF_MAX_TYPE = 0x000FFFFF
_CHECK_ATTACH: dict[int, tuple[int, ...]] = {
    ProgType.CGROUP_SOCK: (AttachType.CGROUP_INET_SOCK_CREATE, AttachType.CGROUP_INET_SOCK_RELEASE,
                           AttachType.CGROUP_INET4_POST_BIND, AttachType.CGROUP_INET6_POST_BIND),
    ProgType.CGROUP_SOCK_ADDR: tuple(
        getattr(AttachType, n) for n in (
            "CGROUP_INET4_BIND", "CGROUP_INET6_BIND", "CGROUP_INET4_CONNECT", "CGROUP_INET6_CONNECT",
            "CGROUP_UNIX_CONNECT", "CGROUP_INET4_GETPEERNAME", "CGROUP_INET6_GETPEERNAME",
            "CGROUP_UNIX_GETPEERNAME", "CGROUP_INET4_GETSOCKNAME", "CGROUP_INET6_GETSOCKNAME",
            "CGROUP_UNIX_GETSOCKNAME", "CGROUP_UDP4_SENDMSG", "CGROUP_UDP6_SENDMSG", "CGROUP_UNIX_SENDMSG",
            "CGROUP_UDP4_RECVMSG", "CGROUP_UDP6_RECVMSG", "CGROUP_UNIX_RECVMSG")),
    ProgType.CGROUP_SKB: (AttachType.CGROUP_INET_INGRESS, AttachType.CGROUP_INET_EGRESS),
    ProgType.CGROUP_SOCKOPT: (AttachType.CGROUP_SETSOCKOPT, AttachType.CGROUP_GETSOCKOPT),
    ProgType.SK_LOOKUP: (AttachType.SK_LOOKUP,),
    ProgType.SK_REUSEPORT: (AttachType.SK_REUSEPORT_SELECT, AttachType.SK_REUSEPORT_SELECT_OR_MIGRATE),
    ProgType.NETFILTER: (AttachType.NETFILTER,),
}


@dataclass(slots=True)
class LoadAttrs:
    """PROG_LOAD's arguments, decoded. ``insns`` holds map *fds* in ``lddw`` (as user space passes
    them); ``name_raw`` is the 16-byte ``prog_name`` of a syscall (checked by ``bpf_obj_name_cpy``);
    ``log_size=None`` means "no buffer limit" (the Python API keeps the whole log)."""

    prog_type: int
    insns: Insns
    license: str = "GPL"
    name: str = ""
    name_raw: bytes | None = None
    expected_attach_type: int = 0
    prog_flags: int = 0
    log_level: int = 0
    log_size: int | None = None
    kern_version: int = 0
    fd_array: list[int] | None = None
    attach_btf_id: int = 0
    attach_prog_fd: int = 0
    prog_ifindex: int = 0
    prog_btf: Any = None
    func_info: list[tuple[int, str, bool]] | None = None
    """BTF func info: ``(insn_idx, name, is_global)`` per function (callbacks need it)."""
    maps: dict[int, Map] | None = None
    """fd → map for ``lddw`` map references, when the caller resolved them itself."""


@dataclass(slots=True)
class LoadResult:
    """What ``BPF_PROG_LOAD`` produced: the program object (no fd yet), the verifier's log and how
    many instructions it verified."""

    program: Program
    log: str = ""
    verified_insns: int = 0


@dataclass(slots=True)
class VerifyOutcome:
    """What the verifier hands back: the post-fixup stream, the maps it uses (id → map), its log."""

    insns: Insns
    used_maps: dict[int, Map]
    log: str = ""
    verified_insns: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def prog_load(kernel: Kernel, a: LoadAttrs) -> LoadResult:
    """``bpf_prog_load`` (see the module docstring). Raises BpfError / VerifierError; the
    VerifierError's ``log`` is the complete log (truncation is applied by :func:`prog_load_attr`)."""
    if a.prog_flags & ~PROG_FLAGS_MASK:
        raise BpfError(errno.EINVAL)
    if a.prog_flags & BPF_F_TOKEN_FD:
        raise BpfError(errno.EINVAL, "BPF tokens are not supported by pybpf")
    ptype = int(a.prog_type)
    attach = int(a.expected_attach_type)
    if ptype == ProgType.CGROUP_SOCK and not attach:
        attach = AttachType.CGROUP_INET_SOCK_CREATE
    elif ptype == ProgType.SK_REUSEPORT and not attach:
        attach = AttachType.SK_REUSEPORT_SELECT
    n_slots = a.insns.slot_count
    if n_slots == 0 or n_slots > BPF_COMPLEXITY_LIMIT_INSNS:
        raise BpfError(errno.E2BIG)
    if a.attach_prog_fd:
        raise BpfError(errno.EINVAL, "attaching to another program (freplace/fentry) is not supported")
    if a.attach_btf_id:
        raise BpfError(errno.EINVAL, "no kernel BTF in pybpf: attach_btf_id cannot be resolved")
    allowed = _CHECK_ATTACH.get(ptype)
    if allowed is not None and attach not in allowed:
        raise BpfError(errno.EINVAL)
    if ptype in (ProgType.SYSCALL, ProgType.EXT) and attach:
        raise BpfError(errno.EINVAL)
    desc = descriptor(ptype)
    name = check_obj_name(a.name_raw) if a.name_raw is not None else a.name
    if a.name_raw is None and name:
        check_obj_name(name.encode()[:15] + b"\0")
    name = name[:15]
    if a.log_level & ~BPF_LOG_MASK or (a.log_size and a.log_size > 0xFFFFFFFF >> 2):
        raise BpfError(errno.EINVAL)
    gpl = license_is_gpl_compatible(a.license)
    info = ProgInfo(ptype, attach, PRIVILEGED, bool(a.prog_flags & BPF_F_SLEEPABLE), a.attach_btf_id)
    tag = prog_tag(a.insns)
    outcome = run_verifier(kernel, a, desc, info, gpl)
    image = ProgramImage(
        prog_type=ptype, insns=outcome.insns, name=name, expected_attach_type=attach, license=a.license,
        gpl_compatible=gpl, tag=tag, prog_flags=a.prog_flags, load_time=boottime_ns(),
        created_by_uid=os.getuid(), verified_insns=outcome.verified_insns,
        custom_type=desc.name if ptype >= 0x1000 else "",
        btf_id=kernel.btf_id_for(a.prog_btf) if a.prog_btf is not None else 0,
        extra=outcome.extra,
    )
    prog = kernel.create_program(image, outcome.used_maps)
    prog.verifier_log = outcome.log
    return LoadResult(prog, outcome.log, outcome.verified_insns)


# ------------------------------------------------------------------------------------------------
# the verifier's one call site


def run_verifier(kernel: Kernel, a: LoadAttrs, desc: Any, info: ProgInfo, gpl: bool) -> VerifyOutcome:
    """``bpf_check``. Uses :mod:`pybpf.verifier`'s entry point when it exists; until then only the
    loader-level rewrites of contract 1 (see the module docstring)."""
    verify = _verifier_entry()
    maps = _resolve_maps(kernel, a)
    if verify is not None:
        return verify(kernel=kernel, attrs=a, desc=desc, info=info, gpl=gpl, maps=maps)
    return loader_rewrites_only(kernel, a, maps)


def _verifier_entry() -> Any:
    try:
        from pybpf.verifier import api  # type: ignore[attr-defined]
    except ImportError:
        return None
    return getattr(api, "kernel_verify", None)


def _resolve_maps(kernel: Kernel, a: LoadAttrs) -> dict[int, Map]:
    """fd → map for every fd a ``lddw`` (or ``fd_array``) names that is a live map (others are left
    out: the verifier reports them with the kernel's words)."""
    out: dict[int, Map] = dict(a.maps or {})
    fds = [i.imm_lo for i in a.insns if i.code == 0x18 and i.src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE)]
    fds += list(a.fd_array or ())
    for fd in fds:
        if fd in out:
            continue
        with contextlib.suppress(BpfError):
            out[fd] = kernel.get_map(fd)
    return out


def loader_rewrites_only(kernel: Kernel, a: LoadAttrs, maps: dict[int, Map]) -> VerifyOutcome:
    """Contract 1 without a verifier: ``lddw`` MAP_FD / MAP_VALUE (and their fd_array IDX forms)
    get the map id (and value offset); everything else is kept as loaded. Errors use the verifier's
    words for the same faults."""
    out: list[Insn] = []
    used: dict[int, Map] = {}
    log: list[str] = []

    def fail(err: int, msg: str, idx: int) -> VerifierError:
        log.append(msg + "\n")
        return VerifierError(err, msg, log="".join(log), insn_idx=idx)

    for idx, insn in a.insns.items():
        if insn.code != 0x18 or insn.src == PseudoSrc.NONE or insn.src == PseudoSrc.FUNC:
            out.append(insn)
            continue
        src = insn.src
        if src in (PseudoSrc.MAP_IDX, PseudoSrc.MAP_IDX_VALUE):
            idx_val = insn.imm_lo
            if not a.fd_array or idx_val >= len(a.fd_array):
                raise fail(errno.EINVAL, "fd_idx without fd_array is invalid" if not a.fd_array
                           else f"failed to load fd with idx {idx_val}", idx)
            fd = a.fd_array[idx_val]
            value = src == PseudoSrc.MAP_IDX_VALUE
        elif src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
            fd = insn.imm_lo
            value = src == PseudoSrc.MAP_VALUE
        else:
            raise fail(errno.EINVAL, "unrecognized bpf_ld_imm64 insn", idx)
        m = maps.get(fd)
        if m is None:
            try:
                os.fstat(fd)
                err = errno.EINVAL
            except OSError:
                err = errno.EBADF
            raise fail(err, f"fd {fd} is not pointing to valid bpf_map", idx)
        used.setdefault(m.id, m)
        if value:
            off = insn.imm_hi
            try:
                m.direct_value_addr(off)
            except BpfError as e:
                raise fail(e.errno or errno.EINVAL, f"direct value offset of {off} is not allowed", idx) from None
            out.append(insn.replace(src=int(PseudoSrc.MAP_VALUE), imm=m.id | (off << 32)))
        else:
            out.append(insn.replace(src=int(PseudoSrc.MAP_FD), imm=m.id))
    return VerifyOutcome(Insns(out), used, "", 0)


# ------------------------------------------------------------------------------------------------
# the syscall


def finalize_log(log: str, log_level: int, log_size: int) -> tuple[bytes, int, bool]:
    """``bpf_vlog_finalize``: (buffer contents incl. the NUL, log_true_size, truncated?)."""
    raw = log.encode("utf-8", "replace")
    true_size = len(raw) + 1 if raw else 0
    if not log_size or not log_level:
        return b"", true_size, False
    if len(raw) + 1 <= log_size:
        return raw + b"\0", true_size, False
    keep = log_size - 1
    body = raw[:keep] if log_level & BPF_LOG_FIXED else raw[len(raw) - keep:]
    return body + b"\0", true_size, True


_LOG_TRUE_SIZE_OFF = 140


def prog_load_attr(kernel: Kernel, attr: Any, uattr: int, size: int) -> int:
    """PROG_LOAD from ``union bpf_attr`` (after CHECK_ATTR); returns the new program's fd."""
    p = attr.prog_load
    if p.prog_flags & ~PROG_FLAGS_MASK:
        raise BpfError(errno.EINVAL)
    if p.insn_cnt == 0 or p.insn_cnt > BPF_COMPLEXITY_LIMIT_INSNS:
        raise BpfError(errno.E2BIG)
    code = native.copy_from_user(p.insns, p.insn_cnt * 8)
    if code is None:
        raise BpfError(errno.EFAULT)
    lic = native.strncpy_from_user(p.license, 127)
    if lic is None:
        raise BpfError(errno.EFAULT)
    insns = Insns.from_bytes(code, strict=False) if _lddw_complete(code) else None
    if insns is None:
        raise VerifierError(errno.EINVAL, "invalid bpf_ld_imm64 insn",
                            log="invalid bpf_ld_imm64 insn\n" if p.log_level else "")
    fd_array = None
    if p.fd_array:
        fd_array = _fd_array(p.fd_array, code)
    a = LoadAttrs(
        prog_type=p.prog_type, insns=insns, license=lic.decode("latin-1"), name_raw=bytes(attr.raw[48:64]),
        expected_attach_type=p.expected_attach_type, prog_flags=p.prog_flags, log_level=p.log_level,
        log_size=p.log_size, kern_version=p.kern_version, fd_array=fd_array, attach_btf_id=p.attach_btf_id,
        attach_prog_fd=p.attach_prog_fd, prog_ifindex=p.prog_ifindex,
    )
    # bpf_vlog_init's checks come before verification
    if (bool(p.log_buf) != bool(p.log_size)) or (p.log_buf and not p.log_level) \
            or p.log_level & ~BPF_LOG_MASK or p.log_size > 0xFFFFFFFF >> 2:
        raise BpfError(errno.EINVAL)
    try:
        result = prog_load(kernel, a)
        log, err = result.log, 0
    except VerifierError as e:
        log, err = e.log, e.errno or errno.EINVAL
        result = None
        verr: VerifierError | None = e
    else:
        verr = None
    buf, true_size, truncated = finalize_log(log, p.log_level, p.log_size)
    if buf and not native.copy_to_user(p.log_buf, buf):
        err = errno.EFAULT
    if truncated:
        err = errno.ENOSPC
    if size >= _LOG_TRUE_SIZE_OFF + 4 and p.log_level and not native.copy_to_user(
            uattr + _LOG_TRUE_SIZE_OFF, true_size.to_bytes(4, "little")):
        err = errno.EFAULT
    if err:
        if result is not None:
            kernel.fs.collect()
        if verr is not None and err == verr.errno:
            raise verr
        raise VerifierError(err, os.strerror(err), log=log)
    assert result is not None
    return kernel.new_fd(result.program)


def _lddw_complete(code: bytes) -> bool:
    i = 0
    n = len(code) // 8
    while i < n:
        if code[i * 8] == 0x18:
            if i + 1 >= n:
                return False
            i += 2
        else:
            i += 1
    return True


def _fd_array(addr: int, code: bytes) -> list[int]:
    """The fd_array entries the program's IDX loads can name (read lazily as the kernel does)."""
    need = 0
    for i in range(0, len(code), 8):
        if code[i] == 0x18 and (code[i + 1] >> 4) in (PseudoSrc.MAP_IDX, PseudoSrc.MAP_IDX_VALUE):
            need = max(need, int.from_bytes(code[i + 4:i + 8], "little") + 1)
    if not need:
        return []
    raw = native.copy_from_user(addr, 4 * need)
    if raw is None:
        raise BpfError(errno.EFAULT)
    return [int.from_bytes(raw[j:j + 4], "little", signed=True) for j in range(0, len(raw), 4)]
