"""The generated UAPI numbering: what the kernel calls things and what bpftool calls them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pybpf import uapi
from pybpf.uapi import (
    AttachType,
    BpfCmd,
    HelperId,
    MapType,
    ProgType,
    SkAction,
    XdpAction,
    bpftool_name,
    c_name,
    from_bpftool_name,
    helper_name,
)

ROOT = Path(__file__).resolve().parents[2]
LINUX = Path(os.environ.get("PYBPF_LINUX_SRC", "/work/ref/linux-source-6.12"))


def test_numbers_are_the_kernels() -> None:
    assert (BpfCmd.MAP_CREATE, BpfCmd.PROG_LOAD, BpfCmd.PROG_TEST_RUN) == (0, 5, 10)
    assert (MapType.HASH, MapType.ARRAY, MapType.LPM_TRIE, MapType.RINGBUF) == (1, 2, 11, 27)
    assert (ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.XDP) == (1, 3, 6)
    assert HelperId.map_lookup_elem == 1 and HelperId.tail_call == 12 and max(HelperId) == 211
    assert (XdpAction.ABORTED, XdpAction.PASS, XdpAction.REDIRECT) == (0, 2, 4) and SkAction.PASS == 1
    assert (uapi.BPF_PSEUDO_MAP_FD, uapi.BPF_PSEUDO_MAP_VALUE, uapi.BPF_PSEUDO_CALL) == (1, 2, 1)
    assert uapi.BPF_F_XDP_HAS_FRAGS == 1 << 5


def test_c_and_bpftool_names_both_ways() -> None:
    assert c_name(MapType.HASH) == "BPF_MAP_TYPE_HASH"
    assert c_name(XdpAction.PASS) == "XDP_PASS" and c_name(SkAction.DROP) == "SK_DROP"
    assert c_name(HelperId.map_lookup_elem) == "BPF_FUNC_map_lookup_elem"
    assert bpftool_name(ProgType.SCHED_CLS) == "sched_cls" and bpftool_name(MapType.LPM_TRIE) == "lpm_trie"
    assert bpftool_name(AttachType.CGROUP_INET_INGRESS) == "cgroup_inet_ingress"
    assert helper_name(1) == "bpf_map_lookup_elem" and helper_name(100000) == "unknown"
    for kind in (MapType, ProgType, AttachType):
        for member in kind:
            assert from_bpftool_name(kind, bpftool_name(member)) is member
            assert from_bpftool_name(kind, c_name(member)) is member
    with pytest.raises(KeyError):
        from_bpftool_name(MapType, "no_such_map")


def test_enum_members_drop_the_c_prefix() -> None:
    for kind, prefix in ((MapType, "BPF_MAP_TYPE_"), (ProgType, "BPF_PROG_TYPE_"), (XdpAction, "XDP_"),
                         (SkAction, "SK_"), (HelperId, "BPF_FUNC_")):
        assert not any(m.name.startswith(prefix) for m in kind)
        assert all(c_name(m).startswith(prefix) for m in kind)


@pytest.mark.skipif(not (LINUX / "include/uapi/linux/bpf.h").exists(), reason="needs the Linux 6.12 source tree")
def test_the_generated_module_is_what_the_generator_makes() -> None:
    """_generated.py is never edited by hand: re-running tools/gen_uapi.py reproduces it."""
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_uapi.py"), str(LINUX)], capture_output=True,
                         text=True, check=True).stdout
    assert out == (ROOT / "src" / "pybpf" / "uapi" / "_generated.py").read_text()
