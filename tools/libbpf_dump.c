/* What libbpf hands to bpf(2): the reference pybpf's reader is compared against.
 *
 * Build (needs a C compiler and libbpf-dev; part of the test-data tooling, not of the package —
 * tools/build_testdata.py and the live-kernel tests build it themselves):
 *     cc -O2 -Wall -rdynamic -o libbpf_dump tools/libbpf_dump.c -lbpf -ldl
 *
 * Usage:
 *     libbpf_dump each OBJ   for every program: a fresh open + load with only that program
 *                            autoloaded (as root; maps really created), so each program reaches
 *                            bpf(2) whatever the verifier thinks of the others
 *     libbpf_dump gen OBJ    libbpf's loader-generation mode: no kernel, the relocated streams
 *                            as libbpf keeps them, maps referenced by index
 *
 * The program defines syscall(): libbpf issues bpf(2) through libc's syscall(), so every
 * BPF_MAP_CREATE (fd -> map name) and BPF_PROG_LOAD (the instructions exactly as passed) is
 * recorded on the way to the real call. Output, one JSON object:
 *     {"mode", "libbpf": version, "open_error": -errno or 0,
 *      "progs": {name: {"load_error", "type_forced", "insns": hex or null, "maps": {"slot": map},
 *                       and in "each" mode for the programs that reached bpf(2): "btf" (hex of
 *                       the BPF_BTF_LOAD blob behind prog_btf_fd), "func_info", "line_info" (hex
 *                       of the records), "func_info_rec_size", "line_info_rec_size"}}}
 * "maps" names the map of every map-referencing lddw (by fd in "each" mode, by index in "gen"
 * mode); "type_forced" says the SEC() name is unknown to this libbpf, so the program was given a
 * type (socket filter) to reach bpf(2) at all — relocation does not depend on it. "insns" is null
 * where libbpf failed before relocating (or, in "each" mode, before calling bpf(2)).
 */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dlfcn.h>
#include <errno.h>
#include <linux/bpf.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_FDS 4096
#define MAX_LOADS 64

struct blob {
	size_t len;
	unsigned char *data;
};

struct load_rec {
	char name[BPF_OBJ_NAME_LEN];
	size_t cnt;
	struct bpf_insn *insns;
	char (*maps)[BPF_OBJ_NAME_LEN]; /* per slot: the map name of a pseudo map lddw, or "" */
	struct blob btf, func_info, line_info; /* the program's BTF (prog_btf_fd) and BTF.ext records */
	unsigned int func_info_rec_size, line_info_rec_size;
};

static char fd_names[MAX_FDS][BPF_OBJ_NAME_LEN];
static struct blob fd_btf[MAX_FDS]; /* BPF_BTF_LOAD: fd -> the blob loaded */
static struct load_rec loads[MAX_LOADS];
static int nr_loads;

typedef long (*syscall_fn)(long, ...);

static void copy_blob(struct blob *b, const void *p, size_t len)
{
	free(b->data);
	b->data = malloc(len ? len : 1);
	b->len = len;
	if (len)
		memcpy(b->data, p, len);
}

static void record_load(const union bpf_attr *attr)
{
	const struct bpf_insn *in = (const struct bpf_insn *)(uintptr_t)attr->insns;
	struct load_rec *r;
	size_t i;

	for (i = 0; i < (size_t)nr_loads; i++) /* libbpf retries a failed load with a log buffer */
		if (strncmp(loads[i].name, attr->prog_name, BPF_OBJ_NAME_LEN) == 0)
			return;
	if (nr_loads == MAX_LOADS)
		return;
	r = &loads[nr_loads++];
	memcpy(r->name, attr->prog_name, BPF_OBJ_NAME_LEN);
	r->name[BPF_OBJ_NAME_LEN - 1] = 0;
	r->cnt = attr->insn_cnt;
	r->insns = calloc(r->cnt ? r->cnt : 1, sizeof(*in));
	r->maps = calloc(r->cnt ? r->cnt : 1, sizeof(*r->maps));
	memcpy(r->insns, in, r->cnt * sizeof(*in));
	memset(&r->btf, 0, sizeof(r->btf));
	memset(&r->func_info, 0, sizeof(r->func_info));
	memset(&r->line_info, 0, sizeof(r->line_info));
	if (attr->prog_btf_fd > 0 && attr->prog_btf_fd < MAX_FDS && fd_btf[attr->prog_btf_fd].data)
		copy_blob(&r->btf, fd_btf[attr->prog_btf_fd].data, fd_btf[attr->prog_btf_fd].len);
	r->func_info_rec_size = attr->func_info_rec_size;
	r->line_info_rec_size = attr->line_info_rec_size;
	if (attr->func_info)
		copy_blob(&r->func_info, (const void *)(uintptr_t)attr->func_info,
			  (size_t)attr->func_info_cnt * attr->func_info_rec_size);
	if (attr->line_info)
		copy_blob(&r->line_info, (const void *)(uintptr_t)attr->line_info,
			  (size_t)attr->line_info_cnt * attr->line_info_rec_size);
	for (i = 0; i < r->cnt; i++) {
		const struct bpf_insn *x = &in[i];
		if (x->code == (BPF_LD | BPF_IMM | BPF_DW) &&
		    (x->src_reg == BPF_PSEUDO_MAP_FD || x->src_reg == BPF_PSEUDO_MAP_VALUE) && x->imm >= 0 &&
		    x->imm < MAX_FDS)
			memcpy(r->maps[i], fd_names[x->imm], BPF_OBJ_NAME_LEN);
	}
}

long syscall(long nr, ...)
{
	static syscall_fn real;
	union bpf_attr attr;
	long a[6];
	va_list ap;
	long ret;
	int i;

	va_start(ap, nr);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (!real)
		real = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
	if (nr == __NR_bpf) {
		/* only the attr's first `size` bytes are the caller's: the rest may be garbage */
		size_t n = (size_t)a[2] < sizeof(attr) ? (size_t)a[2] : sizeof(attr);

		memset(&attr, 0, sizeof(attr));
		memcpy(&attr, (const void *)a[1], n);
	}
	if (nr == __NR_bpf && a[0] == BPF_PROG_LOAD)
		record_load(&attr);
	ret = real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (nr == __NR_bpf && a[0] == BPF_BTF_LOAD && ret >= 0 && ret < MAX_FDS)
		copy_blob(&fd_btf[ret], (const void *)(uintptr_t)attr.btf, attr.btf_size);
	if (nr == __NR_bpf && a[0] == BPF_MAP_CREATE && ret >= 0 && ret < MAX_FDS) {
		memcpy(fd_names[ret], attr.map_name, BPF_OBJ_NAME_LEN);
		fd_names[ret][BPF_OBJ_NAME_LEN - 1] = 0;
	}
	return ret;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	(void)level;
	(void)fmt;
	(void)args;
	return 0;
}

static void print_hex(const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;

	putchar('"');
	for (i = 0; i < n; i++)
		printf("%02x", b[i]);
	putchar('"');
}

static void print_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

static const struct load_rec *find_load(const char *prog_name)
{
	int i;

	for (i = 0; i < nr_loads; i++)
		if (strncmp(loads[i].name, prog_name, BPF_OBJ_NAME_LEN - 1) == 0)
			return &loads[i];
	return NULL;
}

static void reset_loads(void)
{
	int i;

	for (i = 0; i < nr_loads; i++) {
		free(loads[i].insns);
		free(loads[i].maps);
		free(loads[i].btf.data);
		free(loads[i].func_info.data);
		free(loads[i].line_info.data);
	}
	nr_loads = 0;
}

/* Maps declared with LIBBPF_PIN_BY_NAME are neither reused from nor pinned to bpffs: a map pinned
 * there by someone else would be reused (no BPF_MAP_CREATE to name it), and nothing may be left
 * behind. */
static struct bpf_object *open_obj(const char *path)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	struct bpf_map *map;

	if (obj)
		bpf_object__for_each_map(map, obj)
			bpf_map__set_pin_path(map, NULL);
	return obj;
}

/* The per-slot map names of a gen-mode stream: lddw BPF_PSEUDO_MAP_IDX[_VALUE] holds the map's
 * index in the object. */
static void print_idx_maps(struct bpf_object *obj, const struct bpf_insn *in, size_t cnt)
{
	int first = 1;
	size_t i;

	printf("{");
	for (i = 0; i < cnt; i++) {
		const struct bpf_insn *x = &in[i];
		struct bpf_map *map;
		int n = 0;

		if (x->code != (BPF_LD | BPF_IMM | BPF_DW) ||
		    (x->src_reg != BPF_PSEUDO_MAP_IDX && x->src_reg != BPF_PSEUDO_MAP_IDX_VALUE))
			continue;
		bpf_object__for_each_map(map, obj) {
			if (n++ != x->imm)
				continue;
			printf("%s\"%zu\": ", first ? "" : ", ", i);
			print_str(bpf_map__name(map));
			first = 0;
		}
	}
	printf("}");
}

/* "gen": the whole object in libbpf's loader-generation mode, nothing reaches the kernel. */
static int gen(const char *path)
{
	LIBBPF_OPTS(gen_loader_opts, gopts);
	struct bpf_object *obj = open_obj(path);
	struct bpf_program *prog;
	int err, first = 1;

	if (!obj) {
		printf("{\"mode\": \"gen\", \"libbpf\": \"%s\", \"open_error\": %d, \"progs\": {}}\n",
		       libbpf_version_string(), -errno);
		return 0;
	}
	err = bpf_object__gen_loader(obj, &gopts);
	err = err ? : bpf_object__load(obj);
	printf("{\"mode\": \"gen\", \"libbpf\": \"%s\", \"open_error\": 0, \"progs\": {",
	       libbpf_version_string());
	bpf_object__for_each_program(prog, obj) {
		const struct bpf_insn *insns = bpf_program__insns(prog);
		size_t cnt = bpf_program__insn_cnt(prog);

		printf("%s", first ? "" : ", ");
		first = 0;
		print_str(bpf_program__name(prog));
		printf(": {\"load_error\": %d, \"type_forced\": false, \"insns\": ", err);
		if (insns && !err)
			print_hex(insns, cnt * sizeof(*insns));
		else
			printf("null");
		printf(", \"maps\": ");
		if (insns && !err)
			print_idx_maps(obj, insns, cnt);
		else
			printf("{}");
		printf("}");
	}
	printf("}}\n");
	bpf_object__close(obj);
	return 0;
}

/* "each": one program at a time, so every program reaches bpf(2) whatever the others do. */
static int each(const char *path)
{
	struct bpf_object *probe = open_obj(path);
	struct bpf_program *prog;
	int first = 1;

	if (!probe) {
		printf("{\"mode\": \"each\", \"libbpf\": \"%s\", \"open_error\": %d, \"progs\": {}}\n",
		       libbpf_version_string(), -errno);
		return 0;
	}
	printf("{\"mode\": \"each\", \"libbpf\": \"%s\", \"open_error\": 0, \"progs\": {",
	       libbpf_version_string());
	bpf_object__for_each_program(prog, probe) {
		const char *name = bpf_program__name(prog);
		struct bpf_object *obj = open_obj(path);
		struct bpf_program *p;
		const struct load_rec *r;
		size_t i;
		int err, mfirst = 1, forced = 0;

		if (!obj)
			continue;
		bpf_object__for_each_program(p, obj) {
			int mine = strcmp(bpf_program__name(p), name) == 0;

			bpf_program__set_autoload(p, mine);
			/* a SEC() name this libbpf does not know: any type gets the program to bpf(2),
			 * and relocation does not depend on it */
			if (mine && bpf_program__type(p) == BPF_PROG_TYPE_UNSPEC) {
				bpf_program__set_type(p, BPF_PROG_TYPE_SOCKET_FILTER);
				forced = 1;
			}
		}
		reset_loads();
		err = bpf_object__load(obj);
		r = find_load(name);
		printf("%s", first ? "" : ", ");
		first = 0;
		print_str(name);
		printf(": {\"load_error\": %d, \"type_forced\": %s, \"insns\": ", err, forced ? "true" : "false");
		if (r)
			print_hex(r->insns, r->cnt * sizeof(struct bpf_insn));
		else
			printf("null");
		if (r) {
			printf(", \"btf\": ");
			print_hex(r->btf.data, r->btf.len);
			printf(", \"func_info_rec_size\": %u, \"func_info\": ", r->func_info_rec_size);
			print_hex(r->func_info.data, r->func_info.len);
			printf(", \"line_info_rec_size\": %u, \"line_info\": ", r->line_info_rec_size);
			print_hex(r->line_info.data, r->line_info.len);
		}
		printf(", \"maps\": {");
		for (i = 0; r && i < r->cnt; i++) {
			if (!r->maps[i][0])
				continue;
			printf("%s\"%zu\": ", mfirst ? "" : ", ", i);
			print_str(r->maps[i]);
			mfirst = 0;
		}
		printf("}}");
		bpf_object__close(obj);
	}
	printf("}}\n");
	bpf_object__close(probe);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s each|gen OBJ\n", argv[0]);
		return 2;
	}
	if (!getenv("LIBBPF_DUMP_VERBOSE"))
		libbpf_set_print(quiet);
	if (strcmp(argv[1], "each") == 0)
		return each(argv[2]);
	if (strcmp(argv[1], "gen") == 0)
		return gen(argv[2]);
	fprintf(stderr, "unknown mode %s\n", argv[1]);
	return 2;
}
