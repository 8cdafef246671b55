"""Every word the verifier says: the kernel's log format (``kernel/bpf/log.c``, ``disasm.c``).

:class:`VerifierLog` is the kernel's ``bpf_verifier_log``: text appended by ``verbose()``, with the
position bookkeeping the verifier needs (``end_pos``, :meth:`VerifierLog.reset` — at log level 1 a
finished branch's lines are dropped when the next branch is popped, as Linux does).

The formatting functions reproduce the kernel's output byte for byte:

* :func:`format_insn` — ``print_bpf_insn`` (``(61) r1 = *(u32 *)(r1 +16)``);
* :func:`reg_type_str` — ``map_value_or_null``, ``rdonly_mem``, ``ptr_or_null_``...;
* :func:`format_reg` — ``print_reg_state`` (``scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff))``,
  ``map_ptr(map=pkt_counter,ks=4,vs=4)``, ``fp-4``, ``P5``);
* :func:`format_state` — ``print_verifier_state`` (`` R1=ctx() R10=fp0 fp-8=mmmm????``);
* :func:`insn_state_prefix` — the alignment of ``print_insn_state`` (``;`` at column 38...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pybpf.isa import Insn
from pybpf.isa.disasm import ImmPrinter, KernelCallbacks, kernel_insn_text
from pybpf.progtypes.types import BASE_TYPE_MASK, RegType, TypeFlag
from pybpf.verifier.regs import (
    REG_LIVE_DONE,
    REG_LIVE_READ,
    REG_LIVE_WRITTEN,
    S32_MAX,
    S32_MIN,
    S64_MAX,
    S64_MIN,
    RegState,
)
from pybpf.verifier.tnum import U32, U64, Tnum

if TYPE_CHECKING:
    from pybpf.verifier.state import FuncState

__all__ = [
    "Msg",
    "VerifierLog",
    "format_insn",
    "format_reg",
    "format_state",
    "insn_state_prefix",
    "reg_type_str",
    "tnum_str",
]

BPF_LOG_LEVEL1 = 1
BPF_LOG_LEVEL2 = 2
BPF_LOG_STATS = 4
BPF_LOG_ALIGNMENT = 40
BPF_LOG_MIN_ALIGNMENT = 8


class Msg:
    """Every message the verifier writes to its log, in the kernel's words (``str.format``
    templates; the module that uses each is in the comment before its group)."""

    # api.py
    LD_ABS_IS_ONLY_ALLOWED_IN = "LD_ABS is only allowed in functions that return 'int'."
    TAIL_CALL_IS_ONLY_ALLOWED_IN = "tail_call is only allowed in functions that return 'int'."

    # cfg.py
    CALL_TO_INVALID_DESTINATION = "call to invalid destination"
    TOO_MANY_SUBPROGRAMS = "too many subprograms"
    TRACING_PROGS_CANNOT_USE_BPF_TIMER = "tracing progs cannot use bpf_timer yet"
    BPF_STRUCT_OPS_MAP_CANNOT_BE = "bpf_struct_ops map cannot be used in prog"
    INSN_STATE_INTERNAL_BUG = "insn state internal bug"
    LOADING_CALLING_OTHER_BPF_OR_KERNEL = (
        "loading/calling other bpf or kernel functions are allowed for CAP_BPF and CAP_SYS_ADMIN"
    )
    FUNC_AT = "func#{} @{}\n"
    BPF_LDX_USES_RESERVED_FIELDS = "BPF_LDX uses reserved fields"
    UNRECOGNIZED_BPF_LD_IMM64_INSN = "unrecognized bpf_ld_imm64 insn"
    FD_IS_NOT_POINTING_TO_VALID = "fd {} is not pointing to valid bpf_map"
    SOCKET_FILTER_PROGS_CANNOT_USE_BPF = "socket filter progs cannot use bpf_spin_lock yet"
    TRACING_PROGS_CANNOT_USE_BPF_SPIN = "tracing progs cannot use bpf_spin_lock yet"
    JUMP_OUT_OF_RANGE_FROM_INSN = "jump out of range from insn {} to {}"
    BACK_EDGE_FROM_INSN_TO = "back-edge from insn {} to {}"
    UNREACHABLE_INSN = "unreachable insn {}"
    LAST_INSN_IS_NOT_AN_EXIT = "last insn is not an exit or jmp"
    UNKNOWN_OPCODE = "unknown opcode {:02x}"
    FD_IDX_WITHOUT_FD_ARRAY_IS = "fd_idx without fd_array is invalid"
    DIRECT_VALUE_OFFSET_OF_IS_NOT = "direct value offset of {} is not allowed"
    NO_DIRECT_VALUE_ACCESS_SUPPORT_FOR = "no direct value access support for this map type"
    INVALID_ACCESS_TO_MAP_VALUE_POINTER = "invalid access to map value pointer, value_size={} off={}"
    JUMP_INTO_THE_MIDDLE_OF_LDIMM64 = "jump into the middle of ldimm64 insn {}"
    TAIL_CALLS_ARE_NOT_ALLOWED_WHEN = (
        "tail_calls are not allowed when call stack of previous frames is {} bytes. Too large"
    )
    COMBINED_STACK_SIZE_OF_CALLS_IS = "combined stack size of {} calls is {}. Too large"
    CANNOT_USE_BPF_LD_ABS_IND = "cannot use BPF_LD_[ABS|IND] within callback"
    VERIFIER_BUG_NO_PROGRAM_STARTS_AT = "verifier bug. No program starts at insn {}"
    CALL_STACK_TOO_DEEP_TOTAL = "the call stack of {} frames is too deep !"

    # checks/mem.py
    INVALID_BPF_CONTEXT_ACCESS_OFF_SIZE = "invalid bpf_context access off={} size={}"
    R_INVALID_ACCESS_OFF_SIZE = "R{} invalid {} access off={} size={}"
    R_TYPE_PREFIX = "R{} type={} "
    EXPECTED_TYPES = "expected={}"
    ATTEMPT_TO_CORRUPT_SPILLED_POINTER_ON = "attempt to corrupt spilled pointer on stack"
    INVALID_VARIABLE_OFFSET_STACK_R_VAR = "invalid variable-offset{} stack R{} var_off={} off={} size={}"
    VARIABLE_OFFSET_STACK_POINTER_CANNOT_BE = (
        "variable offset stack pointer cannot be passed into helper function; var_off={} off={} size={}"
    )
    WRITE_INTO_MAP_FORBIDDEN_VALUE_SIZE = "write into map forbidden, value_size={} off={} size={}"
    READ_FROM_MAP_FORBIDDEN_VALUE_SIZE = "read from map forbidden, value_size={} off={} size={}"
    INVALID_ACCESS_TO_MAP_KEY_KEY = "invalid access to map key, key_size={} off={} size={}\n"
    R_MIN_NEGATIVE_INDEX = "R{} min value is negative, either use unsigned index or do a if (index >=0) check."
    R_MIN_VALUE_IS_OUTSIDE_OF = "R{} min value is outside of the allowed memory range"
    R_UNBOUNDED_MEMORY_ACCESS_MAKE_SURE = "R{} unbounded memory access, make sure to bounds check any such access"
    R_MAX_VALUE_IS_OUTSIDE_OF = "R{} max value is outside of the allowed memory range"
    R_OFFSET_IS_OUTSIDE_OF_THE = "R{} offset is outside of the packet"
    NEGATIVE_OFFSET_PTR_R_OFF_DISALLOWED = "negative offset {} ptr R{} off={} disallowed"
    DEREFERENCE_OF_MODIFIED_PTR_R_OFF = "dereference of modified {} ptr R{} off={} disallowed"
    VARIABLE_ACCESS_VAR_OFF_DISALLOWED = "variable {} access var_off={} disallowed"
    MISALIGNED_ACCESS_OFF_SIZE = "misaligned {}access off {}+{}+{} size {}"
    R_IS_PTR_INVALID_NEGATIVE_ACCESS = "R{} is ptr_{} invalid negative access: off={}"
    ONLY_READ_IS_SUPPORTED = "only read is supported"
    MAP_PTR_ACCESS_NOT_SUPPORTED_FOR = "map_ptr access not supported for map type {}"
    STRUCT_ACCESS_IS_ALLOWED_ONLY_TO = "'struct {}' access is allowed only to CAP_PERFMON and CAP_SYS_ADMIN"
    R_IS_INVALID_NEGATIVE_ACCESS_OFF = "R{} is {} invalid negative access: off={}"
    ONLY_READ_FROM_IS_SUPPORTED = "only read from {} is supported"
    BPF_ST_USES_RESERVED_FIELDS = "BPF_ST uses reserved fields"
    BPF_ATOMIC_USES_INVALID_ATOMIC_OPCODE = "BPF_ATOMIC uses invalid atomic opcode {:02x}"
    INVALID_ATOMIC_OPERAND_SIZE = "invalid atomic operand size"
    R_LEAKS_ADDR_INTO_MEM = "R{} leaks addr into mem"
    BPF_ATOMIC_STORES_INTO_R_IS = "BPF_ATOMIC stores into R{} {} is not allowed"
    INVALID_ZERO_SIZED_READ = "invalid zero-sized read"
    R_MIN_NEGATIVE_VAR_AND = "R{} min value is negative, either use unsigned or 'var &= const'"
    R_INVALID_ZERO_SIZED_READ_U64 = "R{} invalid zero-sized read: u64=[{},{}]"
    R_UNBOUNDED_MEMORY_ACCESS_USE_VAR = "R{} unbounded memory access, use 'var &= const' or 'if (var < const)'"
    SPILLED_PTR_IN_RANGE_OF_VAR = "spilled ptr in range of var-offset stack write; insn {}, ptr off: {}"
    UNINIT_STACK_IN_RANGE_OF_VAR = "uninit stack in range of var-offset write prohibited for !root; insn {}, off: {}"
    INVALID_READ_FROM_STACK_OFF_SIZE = "invalid read from stack off {}+{} size {}"
    INVALID_UNBOUNDED_VARIABLE_OFFSET_STACK_R = "invalid unbounded variable-offset{} stack R{}"
    INVALID_STACK_R_OFF_SIZE = "invalid{} stack R{} off={} size={}"
    INVALID_ACCESS_TO_MAP_VALUE_VALUE = "invalid access to map value, value_size={} off={} size={}\n"
    MISALIGNED_PACKET_ACCESS_OFF_SIZE = "misaligned packet access off {}+{}+{}+{} size {}"
    WRITE_TO_CHANGE_KEY_R_NOT = "write to change key R{} not allowed"
    R0_LEAKS_ADDR_INTO_MEM = "R0 leaks addr into mem"
    R_VARIABLE_OFFSET_STACK_ACCESS_PROHIBITED = "R{}{} variable offset stack access prohibited for !root, var_off={}"
    VERIFIER_BUG_ALLOCATED_STACK_TOO_SMALL = "verifier bug: allocated_stack too small"
    INVALID_READ_FROM_STACK_R_VAR = "invalid{} read from stack R{} var_off {}+{} size {}"
    R_CANNOT_WRITE_INTO = "R{} cannot write into {}"
    INVALID_SIZE_OF_REGISTER_FILL = "invalid size of register fill"
    INVALID_ACCESS_TO_PACKET_OFF_SIZE = "invalid access to packet, off={} size={}, R{}(id={},off={},r={})\n"
    INVALID_ACCESS_TO_MEMORY_MEM_SIZE = "invalid access to memory, mem_size={} off={} size={}\n"
    CANNOT_BE_ACCESSED_DIRECTLY_BY_LOAD = "{} cannot be accessed directly by load/store"
    R_LEAKS_ADDR_INTO_MAP = "R{} leaks addr into map"
    SAME_INSN_CANNOT_BE_USED_WITH = "same insn cannot be used with different pointers"
    POTENTIAL_WRITE_TO_DYNPTR_AT_OFF = "potential write to dynptr at off={} disallowed"
    INVALID_READ_FROM_STACK_R_OFF = "invalid{} read from stack R{} off {}+{} size {}"
    INVALID_SIZE_OF_REGISTER_SPILL = "invalid size of register spill"
    CANNOT_SPILL_POINTERS_TO_STACK_INTO = "cannot spill pointers to stack into stack frame of the caller"
    LEAKING_POINTER_FROM_STACK_OFF = "leaking pointer from stack off {}"
    KPTR_CANNOT_BE_ACCESSED_INDIRECTLY_BY = "kptr cannot be accessed indirectly by helper"
    KPTR_ACCESS_CANNOT_HAVE_VARIABLE_OFFSET = "kptr access cannot have variable offset"
    KPTR_ACCESS_MISALIGNED_EXPECTED_OFF = "kptr access misaligned expected={} off={}"
    KPTR_ACCESS_SIZE_MUST_BE_BPF = "kptr access size must be BPF_DW"
    R_INVALID_MEM_ACCESS = "R{} invalid mem access '{}'"
    R_LEAKS_ADDR_INTO_CTX = "R{} leaks addr into ctx"
    CANNOT_WRITE_INTO_PACKET = "cannot write into packet"
    R_LEAKS_ADDR_INTO_PACKET = "R{} leaks addr into packet"
    R_LEAKS_ADDR_INTO_FLOW_KEYS = "R{} leaks addr into flow keys"
    INVALID_ACCESS_TO_FLOW_KEYS_OFF = "invalid access to flow keys off={} size={}"
    R_INVALID_TRACEPOINT_BUFFER_ACCESS_OFF = "R{} invalid tracepoint buffer access: off={}, size={}"
    R_INVALID_VARIABLE_BUFFER_OFFSET_OFF = "R{} invalid variable buffer offset: off={}, var_off={}"

    # env.py
    R_IS_INVALID = "R{} is invalid"
    VERIFIER_BUG_TYPE_VAR_OFF_OFF = "verifier BUG type {} var_off {} off {}"
    R_NOT_READ_OK = "R{} !read_ok"
    FRAME_POINTER_IS_READ_ONLY = "frame pointer is read only"

    # fixups.py
    TAIL_CALL_ABUSING_MAP_PTR = "tail_call abusing map_ptr"

    # funcargs.py
    ARG_TYPE_DOESN_T_HAVE_A = "arg#{} type doesn't have a name"
    ARG_SHOULD_BE_VOID_POINTER = "arg#{} should be void pointer"
    ARG_SHOULD_BE_STRUCT = "arg#{} should be `struct {} *`"
    BTF_OF_FUNC_DOESN_T_POINT = "BTF of func doesn't point to KIND_FUNC"
    INVALID_TYPE_OF_FUNCTION = "Invalid type of function {}()"
    ARG_HAS_INVALID_COMBINATION_OF_TAGS = "arg#{} has invalid combination of tags"
    ARG_REFERENCE_TYPE_SIZE_CANNOT_BE = "arg#{} reference type('{} {}') size cannot be determined: -{}"
    ARG_TYPE_TAG_IS_NOT_SUPPORTED = "arg#{} type tag is not supported in static functions"
    ARG_HAS_UNSUPPORTED_SET_OF_TAGS = "arg#{} has unsupported set of tags"
    ARG_HAS_POINTER_TAG_BUT_IS = "arg#{} has pointer tag, but is not a pointer type"
    ARG_ARENA_CANNOT_BE_COMBINED_WITH = "arg#{} arena cannot be combined with any other tags"

    # precision.py
    BUG_SUBPROG_ENTER_FROM_FRAME = "BUG subprog enter from frame {}"
    BUG_SUBPROG_EXIT_FROM_FRAME_0 = "BUG subprog exit from frame 0"
    BACKTRACING_MISUSE = "backtracing misuse"
    BUG_BACKTRACKING_FUNC_ENTRY_SUBPROG_REG = "BUG backtracking func entry subprog {} reg_mask {:x} stack_mask {:x}"
    BUG_BACKTRACKING_IDX = "BUG backtracking idx {}"
    BUG_BACKTRACKING_STACK_SLOT_TOTAL_SLOTS = "BUG backtracking (stack slot {}, total slots {})"
    BUG_REGS_MASK = "BUG regs {:x}"
    BUG_STACK_SLOTS_MASK = "BUG stack slots {:x}"

    # transfer/alu.py
    VERIFIER_INTERNAL_ERROR_UNKNOWN_REASON = "verifier internal error: unknown reason ({})"
    REG_INVARIANTS_VIOLATION_U64_S64_U32 = (
        "REG INVARIANTS VIOLATION ({}): {} u64=[{:#x}, {:#x}] s64=[{:#x}, {:#x}] u32=[{:#x}, {:#x}] s32=[{:#x}, "
        "{:#x}] var_off=({:#x}, {:#x})\n"
    )
    MATH_BETWEEN_POINTER_AND_IS_NOT = "math between {} pointer and {} is not allowed\n"
    POINTER_OFFSET_IS_NOT_ALLOWED = "{} pointer offset {} is not allowed\n"
    MATH_BETWEEN_POINTER_AND_REGISTER_WITH = (
        "math between {} pointer and register with unbounded min value is not allowed\n"
    )
    VALUE_MAKES_POINTER_BE_OUT_OF = "value {} makes {} pointer be out of bounds\n"
    R_VARIABLE_STACK_ACCESS_PROHIBITED_FOR = "R{} variable stack access prohibited for !root, var_off={} off={}"
    R_STACK_POINTER_ARITHMETIC_GOES_OUT = "R{} stack pointer arithmetic goes out of range, prohibited for !root; off={}"
    R_HAS_UNKNOWN_SCALAR_WITH_MIXED = "R{} has unknown scalar with mixed signed bounds, {}"
    R_HAS_POINTER_WITH_UNSUPPORTED_ALU = "R{} has pointer with unsupported alu operation, {}"
    R_TRIED_TO_FROM_DIFFERENT_MAPS = "R{} tried to {} from different maps, paths or scalars, {}"
    R_TRIED_TO_BEYOND_POINTER_BOUNDS = "R{} tried to {} beyond pointer bounds, {}"
    R_COULD_NOT_BE_PUSHED_FOR = "R{} could not be pushed for speculative verification, {}"
    R_32_BIT_POINTER_ARITHMETIC_PROHIBITED = "R{} 32-bit pointer arithmetic prohibited"
    R_POINTER_ARITHMETIC_ON_PROHIBITED_NULL = "R{} pointer arithmetic on {} prohibited, null-check it first"
    R_POINTER_ARITHMETIC_ON_PROHIBITED = "R{} pointer arithmetic on {} prohibited"
    R_POINTER_ARITHMETIC_PROHIBITED = "R{} pointer arithmetic prohibited"
    R_TRIED_TO_SUBTRACT_POINTER_FROM = "R{} tried to subtract pointer from scalar"
    R_SUBTRACTION_FROM_STACK_POINTER_PROHIBITED = "R{} subtraction from stack pointer prohibited"
    R_BITWISE_OPERATOR_ON_POINTER_PROHIBITED = "R{} bitwise operator {} on pointer prohibited"
    R_POINTER_ARITHMETIC_WITH_OPERATOR_PROHIBITED = "R{} pointer arithmetic with {} operator prohibited"
    R_POINTER_POINTER_PROHIBITED = "R{} pointer {} pointer prohibited"
    BPF_NEG_USES_RESERVED_FIELDS = "BPF_NEG uses reserved fields"
    BPF_END_USES_RESERVED_FIELDS = "BPF_END uses reserved fields"
    INVALID_BPF_ALU_OPCODE = "invalid BPF_ALU opcode {:x}"
    R_POINTER_ARITHMETIC_OF_MAP_VALUE = "R{} pointer arithmetic of map value goes out of range, prohibited for !root"
    BPF_MOV_USES_RESERVED_FIELDS = "BPF_MOV uses reserved fields"
    DIV_BY_ZERO = "div by zero"
    ADDR_SPACE_CAST_WITHOUT_ARENA = "addr_space_cast insn can only be used in a program that has an associated arena"
    R_PARTIAL_COPY_OF_POINTER = "R{} partial copy of pointer"
    BPF_ALU_USES_RESERVED_FIELDS = "BPF_ALU uses reserved fields"
    INVALID_SHIFT = "invalid shift {}"
    ADDR_SPACE_CAST_AS = "addr_space_cast insn can only convert between address space 1 and 0"
    R_SIGN_EXTENSION_PART_OF_POINTER = "R{} sign-extension part of pointer"

    # transfer/calls.py
    CANNOT_UPDATE_SOCKMAP_IN_THIS_CONTEXT = "cannot update sockmap in this context\n"
    UNRELEASED_REFERENCE_ID_ALLOC_INSN = "Unreleased reference id={} alloc_insn={}\n"
    VERIFIER_INTERNAL_ERROR_UNSUPPORTED_ARG_TYPE = "verifier internal error: unsupported arg type {}"
    R_TYPE_EXPECTED_PREFIX = "R{} type={} expected="
    MAY_WRITE_INTO_MEMORY_POINTED_BY = "{}() may write into memory pointed by R{} type={}"
    POSSIBLY_NULL_POINTER_PASSED_TO_HELPER = "Possibly NULL pointer passed to helper arg{}"
    SPIN_LOCK_NOT_CONSTANT_OFFSET = "R{} doesn't have constant offset. bpf_spin_lock has to be at the constant offset"
    MAP_HAS_TO_HAVE_BTF_IN = "map '{}' has to have BTF in order to use bpf_spin_lock"
    HAS_NO_VALID_BPF_SPIN_LOCK = "{} '{}' has no valid bpf_spin_lock"
    OFF_NOT_SPIN_LOCK = "off {} doesn't point to 'struct bpf_spin_lock' that is at {}"
    TIMER_NOT_CONSTANT_OFFSET = "R{} doesn't have constant offset. bpf_timer has to be at the constant offset"
    MAP_HAS_NO_VALID_BPF_TIMER = "map '{}' has no valid bpf_timer"
    OFF_NOT_TIMER = "off {} doesn't point to 'struct bpf_timer' that is at {}"
    VERIFIER_BUG_TWO_MAP_POINTERS_IN = "verifier bug. Two map pointers in a timer helper"
    CANNOT_PASS_MAP_TYPE_INTO_FUNC = "cannot pass map_type {} into func {}#{}"
    KERNEL_SUBSYSTEM_MISCONFIGURED_VERIFIER = "kernel subsystem misconfigured verifier"
    WRITE_INTO_MAP_FORBIDDEN = "write into map forbidden"
    PROGRAM_OF_THIS_TYPE_CANNOT_USE = "program of this type cannot use helper {}#{}"
    CANNOT_CALL_GPL_RESTRICTED_FUNCTION_FROM = "cannot call GPL-restricted function from non-GPL compatible program"
    HELPER_CALL_MIGHT_SLEEP_IN_A = "helper call might sleep in a non-sleepable prog"
    CALLBACK_FUNCTION_NOT_ALLOWED_FOR_MAP = "callback function not allowed for map"
    CALL_STACK_TOO_DEEP = "the call stack of {} frames is too deep"
    FUNC_IS_GLOBAL_AND_ASSUMED_VALID = "Func#{} ('{}') is global and assumed valid.\n"
    CALLER = "caller:\n"
    CALLEE = "callee:\n"
    CANNOT_RETURN_STACK_POINTER_TO_THE = "cannot return stack pointer to the caller"
    RETURNING_FROM_CALLEE = "returning from callee:\n"
    TO_CALLER_AT = "to caller at {}:\n"
    R_LEAKS_ADDR_AS_RETURN_VALUE = "R{} leaks addr as return value"
    THE_REGISTER_R_IS_NOT_A = "{} the register R{} is not a known value ({})"
    R_MUST_HAVE_ZERO_OFFSET_WHEN = "R{} must have zero offset when passed to release func or trusted arg to kfunc"
    LOCKING_TWO_BPF_SPIN_LOCKS_ARE = "Locking two bpf_spin_locks are not allowed"
    BPF_SPIN_UNLOCK_WITHOUT_TAKING_A = "bpf_spin_unlock without taking a lock"
    BPF_SPIN_UNLOCK_OF_DIFFERENT_LOCK = "bpf_spin_unlock of different lock"
    R_LEAKS_ADDR_INTO_HELPER_FUNCTION = "R{} leaks addr into helper function"
    HELPER_ACCESS_TO_THE_PACKET_IS = "helper access to the packet is not allowed"
    INVALID_MAP_PTR_TYPE = "invalid map_ptr to access map->type"
    ARG_IS_AN_UNACQUIRED_REFERENCE = "arg {} is an unacquired reference"
    R_MUST_BE_REFERENCED_WHEN_PASSED = "R{} must be referenced when passed to release function"
    VERIFIER_INTERNAL_ERROR_MORE_THAN_ONE = "verifier internal error: more than one arg with ref_obj_id R{} {} {}"
    TIMER_POINTER_IN_R1_MAP_UID = "timer pointer in R1 map_uid={} doesn't match map pointer in R2 map_uid={}"
    INVALID_FUNC = "invalid func {}#{}"
    FUNC_REFERENCE_HAS_NOT_BEEN_ACQUIRED = "func {}#{} reference has not been acquired before"
    TAIL_CALL_CANNOT_BE_USED_INSIDE = "tail_call cannot be used inside bpf_spin_lock-ed region"
    GLOBAL_FUNCTION_CALLS_ARE_NOT_ALLOWED = (
        "global function calls are not allowed while holding a lock,\nuse static function instead"
    )
    CALLER_PASSES_INVALID_ARGS_INTO_FUNC = "Caller passes invalid args into func#{} ('{}')\n"
    R0_NOT_A_SCALAR_VALUE = "R0 not a scalar value"
    INVALID_ARG_TYPE_FOR_SOCKMAP_SOCKHASH = "invalid arg_type for sockmap/sockhash"
    INVALID_MAP_PTR_KEY = "invalid map_ptr to access map->key"
    TAIL_CALLS_ARE_NOT_ALLOWED_IN = "tail_calls are not allowed in non-JITed programs with bpf-to-bpf calls"
    TAIL_CALL_WOULD_LEAD_TO_REFERENCE = "tail_call would lead to reference leak\n"
    GET_LOCAL_STORAGE_DOESN_T_SUPPORT = "get_local_storage() doesn't support non-zero flags"
    AT_SUBPROGRAM_EXIT_THE_REGISTER_R = "At subprogram exit the register R{} is not a scalar value ({})"
    INVALID_MAP_PTR_VALUE = "invalid map_ptr to access map->value"
    R_IS_NOT_A_SCALAR = "R{} is not a scalar"
    ARG_EXPECTS_POINTER_TO_CTX = "arg#{} expects pointer to ctx"
    VERIFIER_INTERNAL_ERROR = "verifier internal error"
    ARG_IS_EXPECTED_TO_BE_NON = "arg#{} is expected to be non-NULL"
    R_IS_NOT_A_POINTER_TO = "R{} is not a pointer to arena or scalar."
    ARG_EXPECTED_POINTER_TO_STACK_OR = "arg#{} expected pointer to stack or const struct bpf_dynptr"
    FRAME_BPF_LOOP_ITERATION_LIMIT_REACHED = "frame{} bpf_loop iteration limit reached\n"
    UNKNOWN_RETURN_TYPE_OF_FUNC = "unknown return type {} of func {}#{}"
    R_TYPE_EXPECTED_PTR_TRUSTED_PTR = "R{} type={} expected=ptr_, trusted_ptr_, rcu_ptr_"
    R_IS_NOT_A_KNOWN_CONSTANT = "R{} is not a known constant'"
    R_DOES_NOT_POINT_TO_A = "R{} does not point to a readonly map'"
    R_IS_NOT_A_CONSTANT_ADDRESS = "R{} is not a constant address'"
    STRING_IS_NOT_ZERO_TERMINATED = "string is not zero-terminated"
    DYNPTR_ARGUMENTS_ARE_NOT_SUPPORTED_BY = "dynptr arguments are not supported by pybpf"

    # transfer/jmp.py
    INVALID_BPF_JMP_JMP32_OPCODE = "invalid BPF_JMP/JMP32 opcode {:x}"
    INVALID_MAY_GOTO_OFF_IMM = "invalid may_goto off {} imm {}"
    BPF_JMP_JMP32_USES_RESERVED_FIELDS = "BPF_JMP/JMP32 uses reserved fields"
    R_POINTER_COMPARISON_PROHIBITED = "R{} pointer comparison prohibited"

    # walk.py
    THE_SEQUENCE_OF_JUMPS_IS_TOO = "The sequence of {} jumps is too complex."
    INVALID_BPF_LD_IMM_INSN = "invalid BPF_LD_IMM insn"
    BPF_LD_IMM64_USES_RESERVED_FIELDS = "BPF_LD_IMM64 uses reserved fields"
    BPF_VERIFIER_IS_MISCONFIGURED = "bpf verifier is misconfigured"
    BPF_LD_ABS_IND_INSTRUCTIONS_NOT = "BPF_LD_[ABS|IND] instructions not allowed for this program type"
    BPF_LD_ABS_IND_USES_RESERVED = "BPF_LD_[ABS|IND] uses reserved fields"
    LD_ABS_IN_SPIN_LOCK = "BPF_LD_[ABS|IND] cannot be used inside bpf_spin_lock-ed region"
    AT_THE_TIME_OF_BPF_LD = "at the time of BPF_LD_ABS|IND R6 != pointer to skb"
    VALIDATING_FUNC = "Validating {}() func#{}...\n"
    MISSING_BTF_FUNC_INFO = "missing btf func_info"
    CALLBACK_FUNCTION_NOT_STATIC = "callback function not static"
    CALLBACK_FUNCTION_CANNOT_BE_THE_MAIN = "callback function cannot be the main program"
    LD_ABS_WITH_SOCKET_REFS = "BPF_LD_[ABS|IND] cannot be mixed with socket references\n"
    INVALID_INSN_IDX_INSN_CNT = "invalid insn idx {} insn_cnt {}"
    BPF_PROGRAM_IS_TOO_LARGE_PROCESSED = "BPF program is too large. Processed {} insn"
    VERIFICATION_TIME_LIMIT_EXCEEDED_PYBPF = "verification time limit exceeded (pybpf)"
    FUNC_IS_SAFE_FOR_ANY_ARGS = "Func#{} ('{}') is safe for any args that match its prototype\n"
    INFINITE_LOOP_DETECTED = "infinite loop detected at insn {}\n"
    CUR_STATE = "cur state:"
    OLD_STATE = "old state:"
    INFINITE_LOOP_HEADLINE = "infinite loop detected at insn {}"
    BPF_STX_USES_RESERVED_FIELDS = "BPF_STX uses reserved fields"
    UNKNOWN_INSN_CLASS = "unknown insn class {}"
    BPF_CALL_USES_RESERVED_FIELDS = "BPF_CALL uses reserved fields"
    FUNCTION_CALLS_ARE_NOT_ALLOWED_WHILE = "function calls are not allowed while holding a lock"
    KFUNCS_NOT_SUPPORTED = "kfunc calls are not supported by pybpf"
    BPF_JA_USES_RESERVED_FIELDS = "BPF_JA uses reserved fields"
    INVALID_BPF_LD_MODE = "invalid BPF_LD mode"
    BPF_EXIT_USES_RESERVED_FIELDS = "BPF_EXIT uses reserved fields"
    BPF_SPIN_UNLOCK_IS_MISSING = "bpf_spin_unlock is missing"


    # gathered from formatted log lines and error headlines
    MARK_PRECISE_BEFORE = "mark_precise: frame{}: regs={} stack={} before {}: "
    MARK_PRECISE_FALLBACK = "mark_precise: frame{}: falling back to forcing all scalars precise\n"
    FORCE_PRECISE_REG = "force_precise: frame{}: forcing r{} to be precise\n"
    FORCE_PRECISE_SLOT = "force_precise: frame{}: forcing fp{} to be precise\n"
    MARK_PRECISE_RANGE = "mark_precise: frame{}: last_idx {} first_idx {} subseq_idx {} \n"
    MARK_PRECISE_PARENT = "mark_precise: frame{}: parent state regs={} stack={}: "
    PROPAGATING_FIRST = "frame {}: propagating {}"
    RETVAL_THE_REGISTER_HAS = "{} the register {} has"
    RETVAL_SMIN = " smin={}"
    RETVAL_SMAX = " smax={}"
    RETVAL_UNKNOWN = " unknown scalar value"
    RETVAL_SHOULD_BE_IN = " should have been in [{}, {}]\n"
    AT_PROGRAM_EXIT = "At program exit"
    AT_ASYNC_CALLBACK_RETURN = "At async callback return"
    AT_CALLBACK_RETURN = "At callback return"
    SANITIZE_PROHIBITED_FOR_UNPRIV = "pointer arithmetic with it prohibited for !root"
    STACK_ACCESS_INDIRECT = " indirect access to"
    STACK_ACCESS_READ = " read from"
    STACK_ACCESS_WRITE = " write to"
    INDIRECT = " indirect"
    BPF_MAP_PTR_MEMBER = "cannot access ptr member {} with moff {} in struct bpf_map with off {} size {}"
    RANGE_BOUNDS_VIOLATION = "range bounds violation"
    CONST_TNUM_OUT_OF_SYNC = "const tnum out of sync with range bounds"
    CONST_SUBREG_TNUM_OUT_OF_SYNC = "const subreg tnum out of sync with range bounds"
    GLOBAL_FUNC_TOO_MANY_ARGS = "Global function {}() with {} > {} args. Buggy compiler."
    GLOBAL_FUNC_NOT_SCALAR_RETURN = "Global function {}() doesn't return scalar. Only those are supported."
    ARG_TYPE_NOT_SUPPORTED = "Arg#{} type {} in {}() is not supported yet."
    SPECULATIVE = " (speculative execution)"
    FROM_TO_SAFE = "\nfrom {} to {}{}: safe\n"
    INSN_SAFE = "{}: safe\n"
    FROM_TO = "\nfrom {} to {}{}:"
    STATS = ("processed {} insns (limit {}) max_states_per_insn {} total_states {} peak_states {} "
             "mark_read {}\n")
    LEVEL4_STATS = "verification time 0 usec\nstack depth {}\n"
    # pybpf's headlines for refusals before the walk (the kernel's bpf_prog_load has no message)
    UNRECOGNIZED_LD_IMM64_TAIL = "invalid bpf_ld_imm64 insn"
    INVALID_PROGRAM_LENGTH = "invalid program length"
    INVALID_PROG_FLAGS = "invalid prog_flags"
    TYPE_NEEDS_CAP_BPF = "program type requires CAP_BPF"
    EMPTY_PROGRAM = "empty program"
    PROGRAM_TOO_LARGE = "program too large"
    REJECTED = "verifier rejected the program"


class VerifierLog:
    """The verifier log buffer. ``level`` is the user's log_level (bits 1, 2, 4)."""

    __slots__ = ("end_pos", "level", "parts")

    def __init__(self, level: int = 0) -> None:
        self.level = level
        self.parts: list[str] = []
        self.end_pos = 0

    def write(self, text: str) -> None:
        if text:
            self.parts.append(text)
            self.end_pos += len(text)

    def reset(self, pos: int) -> None:
        """``bpf_vlog_reset``: drop everything after ``pos``."""
        while self.end_pos > pos and self.parts:
            last = self.parts.pop()
            self.end_pos -= len(last)
            if self.end_pos < pos:
                keep = last[: pos - self.end_pos]
                self.parts.append(keep)
                self.end_pos += len(keep)

    def text(self) -> str:
        return "".join(self.parts)

    def tail(self, since: int) -> str:
        """The text written after position ``since``."""
        full = self.text()
        return full[since:]


# -- numbers -----------------------------------------------------------------------------------------


def _unum(v: int) -> str:
    """``verbose_unum``: a u64 (a negative ``int`` such as a packet range of -2 prints as its
    two's complement), decimal up to 0xffff, hex above."""
    v &= U64
    return str(v) if v <= 0xFFFF else f"{v:#x}"


def _snum(v: int) -> str:
    if -0x8000 <= v <= 0x7FFF:
        return str(v)
    return f"{v & U64:#x}"


def tnum_str(t: Tnum) -> str:
    """``tnum_strn``."""
    if t.mask == 0:
        return _unum(t.value)
    return f"({t.value:#x}; {t.mask:#x})"


# -- register types ------------------------------------------------------------------------------------

_TYPE_STR = {
    RegType.NOT_INIT: "?",
    RegType.SCALAR_VALUE: "scalar",
    RegType.PTR_TO_CTX: "ctx",
    RegType.CONST_PTR_TO_MAP: "map_ptr",
    RegType.PTR_TO_MAP_VALUE: "map_value",
    RegType.PTR_TO_STACK: "fp",
    RegType.PTR_TO_PACKET: "pkt",
    RegType.PTR_TO_PACKET_META: "pkt_meta",
    RegType.PTR_TO_PACKET_END: "pkt_end",
    RegType.PTR_TO_FLOW_KEYS: "flow_keys",
    RegType.PTR_TO_SOCKET: "sock",
    RegType.PTR_TO_SOCK_COMMON: "sock_common",
    RegType.PTR_TO_TCP_SOCK: "tcp_sock",
    RegType.PTR_TO_TP_BUFFER: "tp_buffer",
    RegType.PTR_TO_XDP_SOCK: "xdp_sock",
    RegType.PTR_TO_BTF_ID: "ptr_",
    RegType.PTR_TO_MEM: "mem",
    RegType.PTR_TO_ARENA: "arena",
    RegType.PTR_TO_BUF: "buf",
    RegType.PTR_TO_FUNC: "func",
    RegType.PTR_TO_MAP_KEY: "map_key",
    RegType.CONST_PTR_TO_DYNPTR: "dynptr_ptr",
}
_TYPE_STR_INT = {int(k): v for k, v in _TYPE_STR.items()}


def reg_type_str(t: int) -> str:
    """``reg_type_str``: the name of a register type with its flag prefixes/suffixes."""
    base = t & BASE_TYPE_MASK
    postfix = ""
    if t & TypeFlag.PTR_MAYBE_NULL:
        postfix = "or_null_" if base == RegType.PTR_TO_BTF_ID else "_or_null"
    prefix = ""
    if t & TypeFlag.MEM_RDONLY:
        prefix += "rdonly_"
    if t & TypeFlag.MEM_RINGBUF:
        prefix += "ringbuf_"
    if t & TypeFlag.MEM_USER:
        prefix += "user_"
    if t & TypeFlag.MEM_PERCPU:
        prefix += "percpu_"
    if t & TypeFlag.MEM_RCU:
        prefix += "rcu_"
    if t & TypeFlag.PTR_UNTRUSTED:
        prefix += "untrusted_"
    if t & TypeFlag.PTR_TRUSTED:
        prefix += "trusted_"
    return prefix + _TYPE_STR_INT.get(base, "?") + postfix


# -- registers and states ------------------------------------------------------------------------------

_PKT = (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META)
_MAPLIKE = (RegType.CONST_PTR_TO_MAP, RegType.PTR_TO_MAP_KEY, RegType.PTR_TO_MAP_VALUE)


def _scalar_ranges(reg: RegState, out: list[str]) -> None:
    """``print_scalar_ranges``: merged ``smin=umin=...`` fields, omitting the unbounded ones."""
    def s32v(v: int) -> int:
        return v if -0x8000 <= v <= 0x7FFF else v & U32

    items = [
        ["smin", reg.smin_value, reg.smin_value == S64_MIN],
        ["smax", reg.smax_value, reg.smax_value == S64_MAX],
        ["umin", reg.umin_value, reg.umin_value == 0],
        ["umax", reg.umax_value, reg.umax_value == U64],
        ["smin32", s32v(reg.s32_min_value), reg.s32_min_value == S32_MIN],
        ["smax32", s32v(reg.s32_max_value), reg.s32_max_value == S32_MAX],
        ["umin32", reg.u32_min_value, reg.u32_min_value == 0],
        ["umax32", reg.u32_max_value, reg.u32_max_value == U32],
    ]
    for i, m1 in enumerate(items):
        if m1[2]:
            continue
        name1: str = m1[0]  # type: ignore[assignment]
        v1: int = m1[1]  # type: ignore[assignment]
        neg1 = name1[0] == "s" and v1 < 0
        text = name1 + "="
        for m2 in items[i + 2 :: 2]:
            v2: int = m2[1]  # type: ignore[assignment]
            if m2[2] or (v2 & U64) != (v1 & U64):
                continue
            neg2 = m2[0][0] == "s" and v2 < 0  # type: ignore[index]
            if neg2 != neg1:
                continue
            m2[2] = True
            text += f"{m2[0]}="
        text += _snum(v1) if name1[0] == "s" else _unum(v1)
        out.append(text)


def format_reg(reg: RegState, frameno: int = 0) -> str:
    """``print_reg_state``: the text after ``R1=``."""
    t = reg.type
    pre = ""
    if t == RegType.SCALAR_VALUE and reg.precise:
        pre = "P"
    if t == RegType.SCALAR_VALUE and reg.var_off.mask == 0:
        v = reg.var_off.value
        return pre + _snum(v - (1 << 64) if v >> 63 else v)
    text = pre + reg_type_str(t)
    base = t & BASE_TYPE_MASK
    if base == RegType.PTR_TO_ARENA:
        return text
    if t == RegType.PTR_TO_STACK:
        if frameno != reg.frameno:
            text += f"[{reg.frameno}]"
        if reg.var_off.mask == 0:
            v = reg.var_off.value
            v = v - (1 << 64) if v >> 63 else v
            return text + _snum(v + reg.off)
    if base == RegType.PTR_TO_BTF_ID:
        text += reg.btf_struct or ""
    parts: list[str] = []
    if reg.id:
        parts.append(f"id={reg.id & ~(1 << 31)}")
    if reg.id & (1 << 31):
        idpart = parts.pop() if parts else ""
        parts.append(f"{idpart}{reg.off:+d}")
    if reg.ref_obj_id:
        parts.append(f"ref_obj_id={reg.ref_obj_id}")
    if t & TypeFlag.NON_OWN_REF:
        parts.append("non_own_ref")
    if base in _MAPLIKE and reg.map_ptr is not None:
        m = reg.map_ptr
        if getattr(m, "name", ""):
            parts.append(f"map={m.name}")
        parts.append(f"ks={m.key_size},vs={m.value_size}")
    if t != RegType.SCALAR_VALUE and reg.off:
        parts.append("off=" + _snum(reg.off))
    if t in _PKT:
        parts.append("r=" + _unum(reg.range))
    if base == RegType.PTR_TO_MEM:
        parts.append("sz=" + _unum(reg.mem_size))
    if reg.var_off.mask == 0:
        if reg.var_off.value:
            v = reg.var_off.value
            parts.append("imm=" + _snum(v - (1 << 64) if v >> 63 else v))
    else:
        _scalar_ranges(reg, parts)
        if reg.var_off.mask != U64:
            parts.append("var_off=" + tnum_str(reg.var_off))
    return f"{text}({','.join(parts)})"


def _liveness(live: int, enabled: bool) -> str:
    if not enabled or not live & (REG_LIVE_READ | REG_LIVE_WRITTEN | REG_LIVE_DONE):
        return ""
    s = "_"
    if live & REG_LIVE_READ:
        s += "r"
    if live & REG_LIVE_WRITTEN:
        s += "w"
    if live & REG_LIVE_DONE:
        s += "D"
    return s


_SLOT_CHAR = "?rm0di"


def format_state(
    state: FuncState,
    *,
    print_all: bool,
    scratched_regs: int = -1,
    scratched_stack: int = -1,
    liveness: bool = True,
    refs: tuple[int, ...] = (),
) -> str:
    """``print_verifier_state``: `` frame1: R1=... fp-8=...`` plus ``\\n``."""
    out: list[str] = []
    if state.frameno:
        out.append(f" frame{state.frameno}:")
    for i, reg in enumerate(state.regs):
        if reg.type == RegType.NOT_INIT:
            continue
        if not print_all and not (scratched_regs >> i) & 1:
            continue
        out.append(f" R{i}{_liveness(reg.live, liveness)}={format_reg(reg, state.frameno)}")
    for i, slot in enumerate(state.stack):
        if not print_all and not (scratched_stack >> i) & 1:
            continue
        types = slot.slot_type
        if all(t == 0 for t in types):
            continue
        buf = "".join(_SLOT_CHAR[t] for t in types)
        reg = slot.spilled_ptr
        off = (-i - 1) * 8
        last = types[7]
        if last == 1:  # STACK_SPILL
            j = 0
            while j < 8 and types[j] != 1:
                j += 1
            out.append(f" fp{off}{_liveness(reg.live, liveness)}={buf[:j]}{format_reg(reg, state.frameno)}")
        elif last == 5:  # STACK_ITER
            continue
        else:
            out.append(f" fp{off}{_liveness(reg.live, liveness)}={buf}")
    if refs:
        out.append(" refs=" + ",".join(str(r) for r in refs))
    if state.in_callback_fn:
        out.append(" cb")
    if state.in_async_callback_fn:
        out.append(" async_cb")
    out.append("\n")
    return "".join(out)


def insn_state_prefix(insn_print_len: int) -> str:
    """``print_insn_state``'s padding after an instruction line of ``insn_print_len`` characters
    (newline included): ``%*c;``."""
    pos = insn_print_len
    width = -(-max(pos + BPF_LOG_MIN_ALIGNMENT // 2, BPF_LOG_ALIGNMENT) // BPF_LOG_MIN_ALIGNMENT)
    width = width * BPF_LOG_MIN_ALIGNMENT - pos - 1
    return " " * max(width, 1) + ";"


# -- instructions --------------------------------------------------------------------------------------


def format_insn(
    insn: Insn,
    *,
    allow_ptr_leaks: bool = True,
    imm64: Callable[[Insn], int] | None = None,
    call_name: Callable[[Insn], str | None] | None = None,
) -> str:
    """``print_bpf_insn`` as the verifier calls it: one instruction with a trailing newline.

    The text is the isa layer's kernel dialect (the same printer as ``bpftool prog dump xlated``);
    ``imm64`` gives the value an lddw prints (the kernel prints the map's address there, hidden
    from a loader without ``allow_ptr_leaks``), ``call_name`` names calls the helper table does not
    know (internal functions, kfuncs).
    """
    imm: ImmPrinter | None = None
    if imm64 is not None and allow_ptr_leaks:
        def imm(i: Insn, full: int, value: Callable[[Insn], int] = imm64) -> str:
            return f"{value(i) & U64:#x}"
    cbs = KernelCallbacks(call=call_name, imm=imm)
    return kernel_insn_text(insn, cbs, allow_ptr_leaks=allow_ptr_leaks) + "\n"
