/* pybpf's fallback <bpf/bpf_core_read.h>: CO-RE (compile once, run everywhere) accessors.
 *
 * Each macro asks clang for a relocatable fact about a type or field (__builtin_preserve_*):
 * clang records a .BTF.ext CO-RE relocation, and the loader patches the instruction with the
 * value for the target kernel's types. Written for pybpf; the relocation kinds are the UAPI's
 * enum bpf_core_relo_kind. */
#ifndef __BPF_CORE_READ_H__
#define __BPF_CORE_READ_H__

#include <bpf/bpf_helpers.h>

enum bpf_field_info_kind {
	BPF_FIELD_BYTE_OFFSET = 0,
	BPF_FIELD_BYTE_SIZE = 1,
	BPF_FIELD_EXISTS = 2,
	BPF_FIELD_SIGNED = 3,
	BPF_FIELD_LSHIFT_U64 = 4,
	BPF_FIELD_RSHIFT_U64 = 5,
};

enum bpf_type_id_kind {
	BPF_TYPE_ID_LOCAL = 0,
	BPF_TYPE_ID_TARGET = 1,
};

enum bpf_type_info_kind {
	BPF_TYPE_EXISTS = 0,
	BPF_TYPE_SIZE = 1,
	BPF_TYPE_MATCHES = 2,
};

enum bpf_enum_value_kind {
	BPF_ENUMVAL_EXISTS = 0,
	BPF_ENUMVAL_VALUE = 1,
};

#define __CORE_RELO(src, field, info) __builtin_preserve_field_info((src)->field, BPF_FIELD_##info)

/* field facts: bpf_core_field_exists(p->field) */
#define bpf_core_field_exists(field) __builtin_preserve_field_info(field, BPF_FIELD_EXISTS)
#define bpf_core_field_size(field) __builtin_preserve_field_info(field, BPF_FIELD_BYTE_SIZE)
#define bpf_core_field_offset(field) __builtin_preserve_field_info(field, BPF_FIELD_BYTE_OFFSET)

/* type facts: bpf_core_type_exists(struct task_struct) */
#define bpf_core_type_id_local(type) __builtin_btf_type_id(*(typeof(type) *)0, BPF_TYPE_ID_LOCAL)
#define bpf_core_type_id_kernel(type) __builtin_btf_type_id(*(typeof(type) *)0, BPF_TYPE_ID_TARGET)
#define bpf_core_type_exists(type) __builtin_preserve_type_info(*(typeof(type) *)0, BPF_TYPE_EXISTS)
#define bpf_core_type_matches(type) __builtin_preserve_type_info(*(typeof(type) *)0, BPF_TYPE_MATCHES)
#define bpf_core_type_size(type) __builtin_preserve_type_info(*(typeof(type) *)0, BPF_TYPE_SIZE)

/* enum facts: bpf_core_enum_value(enum foo, FOO_BAR) */
#define bpf_core_enum_value_exists(enum_type, enum_value) \
	__builtin_preserve_enum_value(*(typeof(enum_type) *)enum_value, BPF_ENUMVAL_EXISTS)
#define bpf_core_enum_value(enum_type, enum_value) \
	__builtin_preserve_enum_value(*(typeof(enum_type) *)enum_value, BPF_ENUMVAL_VALUE)

/* Read a bitfield of a struct the program can access directly (e.g. on its stack). */
#define BPF_CORE_READ_BITFIELD(s, field) ({ \
	const void *__p = (const void *)(s) + __CORE_RELO(s, field, BYTE_OFFSET); \
	unsigned long long __v; \
	asm volatile("" : "=r"(__p) : "0"(__p)); \
	switch (__CORE_RELO(s, field, BYTE_SIZE)) { \
	case 1: __v = *(const unsigned char *)__p; break; \
	case 2: __v = *(const unsigned short *)__p; break; \
	case 4: __v = *(const unsigned int *)__p; break; \
	case 8: __v = *(const unsigned long long *)__p; break; \
	default: __v = 0; break; \
	} \
	__v <<= __CORE_RELO(s, field, LSHIFT_U64); \
	if (__CORE_RELO(s, field, SIGNED)) \
		__v = ((long long)__v) >> __CORE_RELO(s, field, RSHIFT_U64); \
	else \
		__v = __v >> __CORE_RELO(s, field, RSHIFT_U64); \
	__v; \
})

/* Write a bitfield, leaving the neighbouring bits alone. */
#define BPF_CORE_WRITE_BITFIELD(s, field, new_val) ({ \
	void *__p = (void *)(s) + __CORE_RELO(s, field, BYTE_OFFSET); \
	unsigned int __lshift = __CORE_RELO(s, field, LSHIFT_U64); \
	unsigned int __rshift = __CORE_RELO(s, field, RSHIFT_U64); \
	unsigned long long __mask, __v, __nv = (new_val); \
	unsigned int __rpad = __rshift - __lshift; \
	asm volatile("" : "+r"(__p)); \
	switch (__CORE_RELO(s, field, BYTE_SIZE)) { \
	case 1: __v = *(unsigned char *)__p; break; \
	case 2: __v = *(unsigned short *)__p; break; \
	case 4: __v = *(unsigned int *)__p; break; \
	case 8: __v = *(unsigned long long *)__p; break; \
	default: __v = 0; break; \
	} \
	__mask = (~0ULL << __rshift) >> __lshift; \
	__v = (__v & ~__mask) | ((__nv << __rpad) & __mask); \
	switch (__CORE_RELO(s, field, BYTE_SIZE)) { \
	case 1: *(unsigned char *)__p = __v; break; \
	case 2: *(unsigned short *)__p = __v; break; \
	case 4: *(unsigned int *)__p = __v; break; \
	case 8: *(unsigned long long *)__p = __v; break; \
	} \
})

/* Read kernel memory through a relocatable pointer: bpf_core_read(&dst, sizeof(dst), &p->f) */
#define bpf_core_read(dst, sz, src) \
	bpf_probe_read_kernel(dst, sz, (const void *)__builtin_preserve_access_index(src))
#define bpf_core_read_str(dst, sz, src) \
	bpf_probe_read_kernel_str(dst, sz, (const void *)__builtin_preserve_access_index(src))

/* BPF_CORE_READ(p, a): one level of `p->a` read with bpf_probe_read_kernel. */
#define BPF_CORE_READ(src, field) ({ \
	typeof((src)->field) __r; \
	bpf_core_read(&__r, sizeof(__r), &(src)->field); \
	__r; \
})

#endif /* __BPF_CORE_READ_H__ */
