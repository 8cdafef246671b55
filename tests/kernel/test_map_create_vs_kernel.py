"""MAP_CREATE's checks for every map type pybpf has, against the running kernel (hypothesis).

Random creation attributes — sizes around each type's limits, every flag bit a map may carry — go
through the same ``union bpf_attr`` to pybpf and to Linux; both must accept, or refuse with the same
errno. Sizes stay small enough that a successful creation never costs the machine much memory.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf import uapi
from pybpf.kernel.maps import supported_map_types
from pybpf.uapi import MapType

from .errno_table import Side, _create

FLAGS = [0, uapi.BPF_F_NO_PREALLOC, uapi.BPF_F_NO_COMMON_LRU, uapi.BPF_F_NUMA_NODE, uapi.BPF_F_RDONLY,
         uapi.BPF_F_WRONLY, uapi.BPF_F_RDONLY_PROG, uapi.BPF_F_WRONLY_PROG, uapi.BPF_F_ZERO_SEED,
         uapi.BPF_F_MMAPABLE, uapi.BPF_F_PRESERVE_ELEMS, uapi.BPF_F_INNER_MAP, 1 << 20]
# types whose creation needs more than attributes (BTF, a device, a cgroup...) are not drawn
TYPES = [t for t in supported_map_types() if t not in (MapType.PERF_EVENT_ARRAY,)]
SIZES = [0, 1, 2, 3, 4, 5, 8, 12, 16, 33, 64, 256, 512, 513, 4096, 32768, 32769]
ENTRIES = [0, 1, 2, 3, 7, 64, 4096, 4097, 8192, 1 << 16]


def _small(key: int, value: int, entries: int) -> bool:
    return entries * (key + value + 64) <= 64 << 20


@pytest.mark.kernel
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(map_type=st.sampled_from(TYPES), key=st.sampled_from(SIZES), value=st.sampled_from(SIZES),
       entries=st.sampled_from(ENTRIES), flags=st.lists(st.sampled_from(FLAGS), max_size=3),
       extra=st.sampled_from([0, 0, 0, 1, 5, 16]))
def test_map_create_same_errno_as_linux(sides: tuple[Side, Side], map_type: int, key: int, value: int,
                                        entries: int, flags: list[int], extra: int) -> None:
    if not _small(key, value, entries):
        return
    fl = 0
    for f in flags:
        fl |= f
    results = []
    for side in sides:
        try:
            inner = 0
            if map_type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
                inner = _create(side, MapType.ARRAY, 4, 4, 1)
            kw = {"inner_map_fd": inner, "map_extra": extra}
            if fl & uapi.BPF_F_NUMA_NODE:
                kw["numa_node"] = 0
            r = _create(side, map_type, key, value, entries, fl, **kw)
            results.append(0 if r >= 0 else -r)
        finally:
            side.cleanup()
    assert results[0] == results[1], (f"{uapi.bpftool_name(MapType(map_type))} key {key} value {value} "
                                      f"entries {entries} flags {fl:#x} extra {extra}: pybpf {results[0]}, "
                                      f"linux {results[1]}")
