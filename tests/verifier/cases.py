"""Data-driven verifier cases: kernel-dialect program text, program type, maps, flags, and what
Linux 6.12 says (verdict, errno, log lines that must appear in order).

Map references are written ``map[id:N]`` where N is the key of the case's map (the "fd").
Each expected log item is a substring of the log at level 1 (the failing path for rejections,
only the statistics line for accepted programs, everything at level 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pybpf.uapi import MapType, ProgType


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    accept: bool
    log: tuple[str, ...] = ()
    errno: int = 0
    prog_type: int = ProgType.SOCKET_FILTER
    maps: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)  # fd -> (type, ks, vs, max)
    flags: int = 0
    log_level: int = 1
    unprivileged: bool = False
    attach: int = 0


ARRAY = {5: (MapType.ARRAY, 4, 8, 4)}
HASH = {5: (MapType.HASH, 8, 16, 16)}
EACCES, EINVAL, E2BIG = 13, 22, 7

CASES: tuple[Case, ...] = (
    Case("uninit_r0_exit", "exit", False, ("0: (95) exit", "R0 !read_ok"), EACCES),
    Case("uninit_src", "r0 = r2\nexit", False, ("R2 !read_ok",), EACCES),
    Case("write_fp", "r10 = 0\nexit", False, ("frame pointer is read only",), EACCES),
    Case("simple_ok", "r0 = 0\nexit", True, ("processed 2 insns (limit 1000000) max_states_per_insn 0 "
                                              "total_states 0 peak_states 0 mark_read 0",)),
    Case("div_by_zero_imm", "r0 = 1\nr0 /= 0\nexit", False, ("div by zero",), EINVAL),
    Case("invalid_shift", "r0 = 1\nr0 <<= 64\nexit", False, ("invalid shift 64",), EINVAL),
    Case("div_by_reg_ok", "r0 = 10\nr1 = 0\nr0 /= r1\nexit", True),
    Case("stack_uninit_read_priv", "r0 = *(u64 *)(r10 -8)\nr0 = 0\nexit", True),
    Case("stack_uninit_read_unpriv", "r0 = *(u64 *)(r10 -8)\nr0 = 0\nexit", False,
         ("invalid read from stack R10 off=-8 size=8",), EACCES, unprivileged=True),
    Case("stack_partial_uninit_unpriv", "r0 = 0\n*(u32 *)(r10 -8) = r0\nr0 = *(u64 *)(r10 -8)\nr0 = 0\nexit",
         False, ("invalid read from stack off -8+4 size 8",), EACCES, unprivileged=True),
    Case("stack_write_read", "r1 = 42\n*(u64 *)(r10 -8) = r1\nr0 = *(u64 *)(r10 -8)\nexit", True),
    Case("stack_out_of_bounds", "r0 = 0\n*(u64 *)(r10 -520) = r0\nexit", False,
         ("invalid write to stack R10 off=-520 size=8",), EACCES),
    Case("stack_misaligned", "r0 = 0\n*(u32 *)(r10 -6) = r0\nexit", False,
         ("misaligned stack access off 0+0+-6 size 4",), EACCES),
    Case("ctx_bad_offset", "r0 = *(u32 *)(r1 +600)\nexit", False, ("invalid bpf_context access off=600 size=4",),
         EACCES),
    Case("ctx_len_ok", "r0 = *(u32 *)(r1 +0)\nexit", True),
    Case("ctx_write_sockfilter", "r0 = 0\n*(u32 *)(r1 +8) = r0\nexit", False,
         ("invalid bpf_context access off=8 size=4",), EACCES),
    Case("ctx_modified_ptr", "r1 += 4\nr0 = *(u32 *)(r1 +0)\nexit", False,
         ("dereference of modified ctx ptr R1 off=4 disallowed",), EACCES),
    Case("map_lookup_no_null_check",
         "r1 = 0\n*(u32 *)(r10 -4) = r1\nr2 = r10\nr2 += -4\nr1 = map[id:5]\ncall bpf_map_lookup_elem#1\n"
         "r0 = *(u64 *)(r0 +0)\nexit", False,
         ("6: (85) call bpf_map_lookup_elem#1", "R0_w=map_value_or_null(id=1,map=m5,ks=4,vs=8)",
          "R0 invalid mem access 'map_value_or_null'"), EACCES, maps=ARRAY),
    Case("map_lookup_checked",
         "r1 = 0\n*(u32 *)(r10 -4) = r1\nr2 = r10\nr2 += -4\nr1 = map[id:5]\ncall bpf_map_lookup_elem#1\n"
         "if r0 == 0x0 goto pc+1\nr0 = *(u64 *)(r0 +0)\nr0 = 0\nexit", True, maps=ARRAY),
    Case("map_value_oob",
         "r1 = 0\n*(u32 *)(r10 -4) = r1\nr2 = r10\nr2 += -4\nr1 = map[id:5]\ncall bpf_map_lookup_elem#1\n"
         "if r0 == 0x0 goto pc+1\nr0 = *(u64 *)(r0 +8)\nr0 = 0\nexit", False,
         ("invalid access to map value, value_size=8 off=8 size=8",
          "R0 min value is outside of the allowed memory range"), EACCES, maps=ARRAY),
    Case("map_key_uninit",
         "r2 = r10\nr2 += -8\nr1 = map[id:5]\ncall bpf_map_lookup_elem#1\nr0 = 0\nexit", True, maps=HASH),
    Case("map_key_too_small_stack",
         "r2 = r10\nr2 += -4\nr1 = map[id:5]\ncall bpf_map_lookup_elem#1\nr0 = 0\nexit", False,
         ("invalid indirect access to stack R2 off=-4 size=8",), EINVAL, maps=HASH),
    Case("bad_map_fd", "r1 = map[id:9]\nr0 = 0\nexit", False, ("fd 9 is not pointing to valid bpf_map",), 9),
    Case("helper_not_allowed", "call bpf_xdp_adjust_head#44\nr0 = 0\nexit", False,
         ("program of this type cannot use helper bpf_xdp_adjust_head#44",), EINVAL),
    Case("unknown_helper", "call unknown#9999\nr0 = 0\nexit", False, ("invalid func unknown#9999",), EINVAL),
    Case("helper_clobbers_r1", "call bpf_get_prandom_u32#7\nr0 = r1\nexit", False, ("R1 !read_ok",), EACCES),
    Case("unreachable", "r0 = 0\nexit\nr0 = 1\nexit", False, ("unreachable insn 2",), EINVAL),
    Case("jump_out_of_range", "r0 = 0\ngoto pc+5\nexit", False, ("jump out of range from insn 1 to 7",), EINVAL),
    Case("last_not_exit", "r0 = 0", False, ("last insn is not an exit or jmp",), EINVAL),
    Case("bounded_loop",
         "r0 = 0\nr1 = 0\nr0 += 1\nr1 += 1\nif r1 < 0x10 goto pc-3\nexit", True),
    Case("infinite_loop", "r0 = 0\nr0 = 0\nif r0 == 0x0 goto pc-2\nexit", False,
         ("infinite loop detected at insn 1",), EINVAL),
    Case("branch_folding",
         "r1 = 5\nif r1 > 0x3 goto pc+1\nr0 = *(u64 *)(r10 -8)\nr0 = 0\nexit", True),
    Case("jmp32_refine",
         "r0 = *(u32 *)(r1 +0)\nif w0 > 0x7 goto pc+4\nr2 = r10\nr2 += -8\nr2 += r0\n"
         "r0 = *(u64 *)(r2 +0)\nr0 = 0\nexit", False,
         ("1: (26) if w0 > 0x7 goto pc+4", "R0_w=scalar(smin=smin32=0,smax=umax=smax32=umax32=7,var_off=(0x0; 0x7))",
          "misaligned stack access off (0x0; 0x7)+-8+0 size 8"), EACCES),
    Case("jmp32_refine_ok",
         "r0 = *(u32 *)(r1 +0)\nif w0 > 0x7 goto pc+4\nr2 = r10\nr2 += -8\nr2 += r0\n"
         "r0 = *(u8 *)(r2 +0)\nr0 = 0\nexit", True),
    Case("ptr_arith_prohibited", "r0 = r10\nr0 *= 2\nexit", False,
         ("R0 pointer arithmetic with *= operator prohibited",), EACCES),
    Case("ptr_subtract_from_scalar", "r0 = 1\nr0 -= r10\nexit", False,
         ("R0 tried to subtract pointer from scalar",), EACCES),
    Case("ptr_leak_unpriv", "r0 = r10\nexit", False, ("R0 leaks addr as return value",), EACCES,
         unprivileged=True),
    Case("ptr_return_priv", "r0 = r10\nexit", True),
    Case("bpf_to_bpf_call",
         "r1 = 1\ncall pc+2\nr0 = 0\nexit\nr0 = r1\nexit", True),
    Case("subprog_stack_too_deep",
         "r0 = 0\n*(u64 *)(r10 -504) = r0\ncall pc+1\nexit\nr0 = 0\n*(u64 *)(r10 -16) = r0\nexit", False,
         ("combined stack size of 2 calls is 528. Too large",), EACCES),
    Case("packet_no_bounds_check",
         "r2 = *(u32 *)(r1 +0)\nr0 = *(u8 *)(r2 +0)\nr0 = 2\nexit", False,
         ("invalid access to packet, off=0 size=1, R2(id=0,off=0,r=0)", "R2 offset is outside of the packet"),
         EACCES, prog_type=ProgType.XDP),
    Case("packet_bounds_checked",
         "r2 = *(u32 *)(r1 +0)\nr3 = *(u32 *)(r1 +4)\nr4 = r2\nr4 += 14\nif r4 > r3 goto pc+1\n"
         "r0 = *(u8 *)(r2 +13)\nr0 = 2\nexit", True, prog_type=ProgType.XDP),
    Case("packet_read_past_check",
         "r2 = *(u32 *)(r1 +0)\nr3 = *(u32 *)(r1 +4)\nr4 = r2\nr4 += 14\nif r4 > r3 goto pc+1\n"
         "r0 = *(u8 *)(r2 +14)\nr0 = 2\nexit", False, ("R2 offset is outside of the packet",), EACCES,
         prog_type=ProgType.XDP),
    Case("pkt_end_arith", "r3 = *(u32 *)(r1 +4)\nr3 += 1\nr0 = 2\nexit", False,
         ("R3 pointer arithmetic on pkt_end prohibited",), EACCES, prog_type=ProgType.XDP),
    Case("xdp_narrow_ctx", "r0 = *(u16 *)(r1 +16)\nexit", False, ("invalid bpf_context access off=16 size=2",),
         EACCES, prog_type=ProgType.XDP),
    Case("skb_narrow_ctx_ok", "r0 = *(u8 *)(r1 +0)\nexit", True),
    Case("ld_abs_ok", "r6 = r1\nr0 = *(u8 *)skb[12]\nexit", True),
    Case("ld_abs_xdp", "r6 = r1\nr0 = *(u8 *)skb[12]\nexit", False,
         ("BPF_LD_[ABS|IND] instructions not allowed for this program type",), EINVAL, prog_type=ProgType.XDP),
    Case("cgroup_skb_retval", "r0 = 2\nexit", False,
         ("At program exit the register R0 has smin=2 smax=2 should have been in [0, 1]",), EINVAL,
         prog_type=ProgType.CGROUP_SKB),
    Case("cgroup_skb_retval_ok", "r0 = 1\nexit", True, prog_type=ProgType.CGROUP_SKB),
    Case("strict_alignment",
         "r2 = *(u32 *)(r1 +0)\nr3 = *(u32 *)(r1 +4)\nr4 = r2\nr4 += 8\nif r4 > r3 goto pc+1\n"
         "r0 = *(u32 *)(r2 +1)\nr0 = 2\nexit", False, ("misaligned packet access off 2+0+0+1 size 4",), EACCES,
         prog_type=ProgType.XDP, flags=1),
    Case("ringbuf_leak",
         "r1 = map[id:5]\nr2 = 8\nr3 = 0\ncall bpf_ringbuf_reserve#131\nr0 = 0\nexit", False,
         ("R0_w=ringbuf_mem_or_null(id=2,ref_obj_id=2,sz=8) refs=2",
          "Unreleased reference id=2 alloc_insn=4"), EINVAL, maps={5: (MapType.RINGBUF, 0, 0, 4096)}),
    Case("ringbuf_submit",
         "r1 = map[id:5]\nr2 = 8\nr3 = 0\ncall bpf_ringbuf_reserve#131\nif r0 == 0x0 goto pc+3\nr1 = r0\n"
         "r2 = 0\ncall bpf_ringbuf_submit#132\nr0 = 0\nexit", True, maps={5: (MapType.RINGBUF, 0, 0, 4096)}),
    Case("verbose_branch_log",
         "r0 = *(u32 *)(r1 +0)\nif r0 > 0x7 goto pc+1\nr0 = 1\nexit", True,
         ("0: (61) r0 = *(u32 *)(r1 +0)", "1: (25) if r0 > 0x7 goto pc+1",
          "R0_w=scalar(smin=smin32=0,smax=umax=smax32=umax32=7,var_off=(0x0; 0x7))",
          "from 1 to 3: R0_w=scalar(smin=umin=umin32=8,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff)) R1=ctx() "
          "R10=fp0", "processed 5 insns"), log_level=2),
)
