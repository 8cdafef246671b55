/* libbpf's pre-1.0 map definitions: struct bpf_map_def in SEC("maps") (20 bytes each),
 * plus a "version" section. libbpf 1.x refuses this section; pybpf reads it. */
typedef unsigned int __u32;
typedef unsigned long long __u64;

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct xdp_md;
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

__attribute__((section("maps"), used)) struct bpf_map_def counts = {
	.type = 2, /* BPF_MAP_TYPE_ARRAY */
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 8,
};

__attribute__((section("maps"), used)) struct bpf_map_def table = {
	.type = 1, /* BPF_MAP_TYPE_HASH */
	.key_size = 8,
	.value_size = 16,
	.max_entries = 128,
	.map_flags = 1, /* BPF_F_NO_PREALLOC */
};

__attribute__((section("xdp"), used)) int count(struct xdp_md *ctx)
{
	__u32 key = 3;
	__u64 k8 = 7;
	__u64 *v = bpf_map_lookup_elem(&counts, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
	if (bpf_map_lookup_elem(&table, &k8))
		return 1;
	return 2;
}

char _license[] __attribute__((section("license"), used)) = "GPL";
__u32 _version __attribute__((section("version"), used)) = 0x060c00;
