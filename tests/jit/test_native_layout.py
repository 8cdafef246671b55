"""The native helpers' restatement of the kernel layer's storage layout agrees with the kernel layer.

The JIT may not import the kernel layer, so :mod:`pybpf.jit.native.layout` repeats the numbers;
these tests fail the moment either side moves one.
"""

from __future__ import annotations

from pybpf.jit.compile import RunStateField
from pybpf.jit.native import ENV, ENV_SIZE, EnvField, build_library, layout, library
from pybpf.jit.native import packet as native_packet
from pybpf.kernel import runenv
from pybpf.kernel.maps import base, hash, lpm_trie, ringbuf
from pybpf.kernel.runenv import ETH_HLEN, SKB_SHARED_INFO, XDP_FRAME_SIZE


def test_header_offsets_are_the_kernel_layers() -> None:
    for f in layout.Hdr:
        assert base.OFF[f.name.lower()] == f.value, f.name
    assert layout.NO_SPIN_LOCK == base.NO_SPIN_LOCK
    assert base.HEADER_SIZE == 256


def test_key_hash_constant_matches() -> None:
    # key_hash of one word with seed 0 is exactly the multiplication the native code does
    h = (0x1234 * layout.KEY_HASH_MUL) & (2**64 - 1)
    assert base.key_hash((0x1234).to_bytes(8, "little"), 0) == (h ^ (h >> 32)) & 0xFFFF_FFFF


def test_element_and_node_layouts() -> None:
    assert (layout.Elem.NEXT, layout.Elem.HASH, layout.Elem.LRU_PREV, layout.Elem.LRU_NEXT, layout.Elem.FLAGS,
            layout.Elem.REF) == (hash.E_NEXT, hash.E_HASH, hash.E_PREV, hash.E_LNEXT, hash.E_FLAGS, hash.E_REF)
    assert layout.Elem.KEY == hash.ELEM_HEADER
    assert layout.FL_USED == hash.FL_USED
    assert layout.Lpm.DATA == lpm_trie.NODE_HEADER
    assert layout.LPM_FL_IM == lpm_trie.FL_IM
    assert (layout.Ring.HDR_SZ, layout.Ring.BUSY_BIT, layout.Ring.DISCARD_BIT, layout.Ring.MAX_RECORD_SZ) == (
        ringbuf.HDR_SZ, ringbuf.BUSY_BIT, ringbuf.DISCARD_BIT, ringbuf.RINGBUF_MAX_RECORD_SZ)
    assert (ringbuf.OFF_CONS, ringbuf.OFF_PROD, ringbuf.OFF_PEND) == (
        layout.Hdr.CONSUMER_POS, layout.Hdr.PRODUCER_POS, layout.Hdr.PENDING_POS)


def test_xdp_bounds_are_the_kernel_layers() -> None:
    assert (native_packet.XDP_FRAME_SIZE, native_packet.SKB_SHARED_INFO, native_packet.ETH_HLEN) == (
        XDP_FRAME_SIZE, SKB_SHARED_INFO, ETH_HLEN)
    assert native_packet.XDP_META_MAX == runenv.XDP_META_MAX
    assert [runenv.metalen_invalid(n) for n in (0, 4, 252, 254, 256)] == [False, False, False, True, True]


def test_env_block_follows_the_run_state() -> None:
    assert ENV == RunStateField.SIZE
    assert ENV_SIZE == EnvField.SIZE and ENV_SIZE % 8 == 0
    offsets = sorted(f.value for f in EnvField if f is not EnvField.SIZE)
    assert len(set(offsets)) == len(offsets) and offsets[-1] < ENV_SIZE


def test_library_builds_once_and_names_every_function() -> None:
    img = build_library()
    assert build_library() is img  # cached: the Python emission runs once per process
    lib = library()
    assert library() is lib
    for name in ("htab_lookup", "htab_update", "htab_delete", "htab_lookup_raw", "array_lookup", "array_update",
                 "trie_lookup", "qs_push", "queue_pop", "stack_peek", "ringbuf_reserve", "ringbuf_output",
                 "ktime_get_ns", "get_prandom_u32", "redirect_map", "xdp_adjust_head", "skb_load"):
        assert lib.address(name) % 16 == 0  # functions are aligned
    assert img.code_size <= len(img.code)
    assert img.relocs and img.relocs[0][1] == "clock_gettime"


def test_lru_layout_is_the_kernel_layers() -> None:
    from pybpf.jit.native import lru as native_lru
    from pybpf.kernel.maps import lru

    assert (native_lru.ACTIVE, native_lru.INACTIVE, native_lru.FREE, native_lru.LOCAL_FREE,
            native_lru.LOCAL_PENDING) == (lru.ACTIVE, lru.INACTIVE, lru.FREE, lru.LOCAL_FREE, lru.LOCAL_PENDING)
    assert (native_lru.E_TYPE, native_lru.E_CPU) == (lru.E_TYPE, lru.E_CPU)
    assert (layout.Elem.LRU_PREV, layout.Elem.LRU_NEXT, layout.Elem.REF) == (lru.E_PREV, lru.E_LNEXT, lru.E_REF)
    assert (native_lru.LOCAL_FREE_TARGET, native_lru.PERCPU_FREE_TARGET) == (lru.LOCAL_FREE_TARGET,
                                                                            lru.PERCPU_FREE_TARGET)
    # the area's size as lru_setup computes it: heads, list blocks, local blocks
    for ncpus in (1, 2, 5):
        for percpu in (False, True):
            nheads = 2 * ncpus if percpu else 2 + ncpus
            size = 8 * nheads + 16 * (ncpus if percpu else 1) + (0 if percpu else 8 * ncpus)
            assert size == lru.lru_area_size(ncpus, percpu)
