/* iproute2's (tc) map definitions: struct bpf_elf_map in SEC("maps"), 36 bytes each with
 * id, pinning and the inner-map fields; the helper declared as a numbered function pointer. */
typedef unsigned int __u32;

struct bpf_elf_map {
	__u32 type;
	__u32 size_key;
	__u32 size_value;
	__u32 max_elem;
	__u32 flags;
	__u32 id;
	__u32 pinning;
	__u32 inner_id;
	__u32 inner_idx;
};

#define PIN_GLOBAL_NS 2
struct __sk_buff;
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

__attribute__((section("maps"), used)) struct bpf_elf_map acc = {
	.type = 2,
	.size_key = 4,
	.size_value = 4,
	.max_elem = 2,
	.id = 7,
	.pinning = PIN_GLOBAL_NS,
};

__attribute__((section("maps"), used)) struct bpf_elf_map other = {
	.type = 1,
	.size_key = 4,
	.size_value = 8,
	.max_elem = 32,
	.flags = 1,
	.id = 8,
};

__attribute__((section("classifier"), used)) int cls(struct __sk_buff *skb)
{
	__u32 k = 1;
	__u32 *v = bpf_map_lookup_elem(&acc, &k);

	if (v)
		__sync_fetch_and_add(v, 1);
	return bpf_map_lookup_elem(&other, &k) ? 0 : 2;
}

char _license[] __attribute__((section("license"), used)) = "GPL";
