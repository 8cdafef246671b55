"""Kconfig externs: values with libbpf's parsing rules, and what a loader must refuse before loading.

kconfig.c has one extern of every kind libbpf accepts (int, bool, tristate, char array, signed char,
u64, u16) and a weak unknown ``LINUX_*``; kconfig_virtual.c has what libbpf refuses at load time (a
strong unknown ``LINUX_*`` and a name that is neither ``CONFIG_*`` nor ``LINUX_*``).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pybpf.elf import ObjectSpec
from pybpf.elf.kconfig import KcfgType, kcfg_type
from pybpf.errors import RelocationError

OBJ = Path(__file__).resolve().parents[1] / "data" / "objects"


def kconfig() -> ObjectSpec:
    return ObjectSpec.from_path(str(OBJ / "kconfig.o"))


def value(spec: ObjectSpec, name: str) -> bytes:
    ext = next(e for e in spec.externs if e.name == name)
    data = spec.maps["kconfig.kconfig"].data
    assert data is not None
    return data[ext.offset : ext.offset + ext.size]


def test_types_follow_libbpf() -> None:
    spec = kconfig()
    assert spec.btf is not None
    kinds = {e.name: kcfg_type(spec.btf, e.type_id) for e in spec.externs}
    assert kinds == {
        "CONFIG_BIG": (KcfgType.INT, False),
        "CONFIG_BPF_SYSCALL": (KcfgType.BOOL, False),
        "CONFIG_DEFAULT_HOSTNAME": (KcfgType.CHAR_ARR, False),
        "CONFIG_HZ": (KcfgType.INT, True),
        "CONFIG_NET_SCH_INGRESS": (KcfgType.TRISTATE, False),
        "CONFIG_PORT": (KcfgType.INT, False),
        "CONFIG_SMALL": (KcfgType.CHAR, True),
        "LINUX_NOT_A_THING": (KcfgType.INT, True),
    }


def test_strong_externs_without_values_are_refused() -> None:
    spec = kconfig()
    assert not any(e.resolved for e in spec.externs)
    with pytest.raises(RelocationError, match=r"extern 'CONFIG_BPF_SYSCALL' \(strong\): not resolved"):
        spec.check_loadable()


def test_kconfig_text_sets_values_like_libbpf() -> None:
    spec = kconfig()
    spec.set_kconfig(
        "# CONFIG_FOO is not set\n"
        "CONFIG_HZ=250\n"
        "CONFIG_BPF_SYSCALL=y\n"
        "CONFIG_NET_SCH_INGRESS=m\n"
        'CONFIG_DEFAULT_HOSTNAME="(none)"\n'
        "CONFIG_SMALL=-128\n"
        "CONFIG_BIG=0xffffffffffffffff\n"
        "CONFIG_PORT=0100\n"  # octal, as strtoull with base 0
        "CONFIG_UNUSED=y\n"
        "CONFIG_HZ=1000\n"  # an extern that has its value keeps it
    )
    assert struct.unpack("<i", value(spec, "CONFIG_HZ")) == (250,)
    assert value(spec, "CONFIG_BPF_SYSCALL") == b"\x01"
    assert struct.unpack("<I", value(spec, "CONFIG_NET_SCH_INGRESS")) == (2,)  # TRI_MODULE
    assert value(spec, "CONFIG_DEFAULT_HOSTNAME") == b"(none)\0\0"
    assert value(spec, "CONFIG_SMALL") == b"\x80"
    assert value(spec, "CONFIG_BIG") == b"\xff" * 8
    assert struct.unpack("<H", value(spec, "CONFIG_PORT")) == (64,)
    assert value(spec, "LINUX_NOT_A_THING") == b"\0" * 4  # weak unknown virtual: zero
    resolved = {e.name for e in spec.externs if e.resolved}
    assert resolved == {e.name for e in spec.externs} - {"LINUX_NOT_A_THING"}
    spec.check_loadable()  # weak LINUX_NOT_A_THING defaults to zero, as in libbpf


def test_a_mapping_works_too_and_strings_are_truncated() -> None:
    spec = kconfig()
    spec.set_kconfig(
        {
            "CONFIG_HZ": 100,
            "CONFIG_BPF_SYSCALL": False,
            "CONFIG_NET_SCH_INGRESS": "y",
            "CONFIG_DEFAULT_HOSTNAME": '"localhost.localdomain"',
        }
    )
    assert struct.unpack("<i", value(spec, "CONFIG_HZ")) == (100,)
    assert value(spec, "CONFIG_BPF_SYSCALL") == b"\x00"
    assert struct.unpack("<I", value(spec, "CONFIG_NET_SCH_INGRESS")) == (1,)
    assert value(spec, "CONFIG_DEFAULT_HOSTNAME") == b"localho\0"  # 7 bytes and the NUL
    spec.check_loadable()


def test_copies_are_independent() -> None:
    spec = kconfig()
    other = spec.copy()
    other.set_kconfig("CONFIG_HZ=300\n")
    assert value(spec, "CONFIG_HZ") == b"\0" * 4


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("CONFIG_BPF_SYSCALL=m", r"extern \(kcfg\) 'CONFIG_BPF_SYSCALL': value 'm' implies tristate or char type"),
        ("CONFIG_HZ=y", r"extern \(kcfg\) 'CONFIG_HZ': value 'y' implies bool, tristate, or char type"),
        ('CONFIG_HZ="x"', r"extern \(kcfg\) 'CONFIG_HZ': value '\"x\"' implies char array type"),
        ('CONFIG_DEFAULT_HOSTNAME="x', r"invalid string config '\"x'"),
        ("CONFIG_DEFAULT_HOSTNAME=12", r"value '12' implies integer type"),
        ("CONFIG_NET_SCH_INGRESS=1", r"value '1' implies integer type"),
        ("CONFIG_HZ=0x100000000", r"extern \(kcfg\) 'CONFIG_HZ': value '4294967296' doesn't fit in 4 bytes"),
        ("CONFIG_PORT=-1", r"value '18446744073709551615' doesn't fit in 2 bytes"),
        ("CONFIG_SMALL=200", r"value '200' doesn't fit in 1 bytes"),
        ("CONFIG_HZ=12abc", r"value '12abc' isn't a valid integer"),
        ("CONFIG_HZ=08", r"value '08' isn't a valid integer"),
        ("CONFIG_HZ=1_000", r"value '1_000' isn't a valid integer"),
        ("CONFIG_HZ", r"failed to parse 'CONFIG_HZ': no separator"),
        ("CONFIG_HZ=", r"failed to parse 'CONFIG_HZ=': no value"),
    ],
)
def test_bad_values_use_libbpfs_words(line: str, message: str) -> None:
    with pytest.raises(RelocationError, match=message):
        kconfig().set_kconfig(line)


def test_negative_values_wrap_like_strtoull() -> None:
    spec = kconfig()
    spec.set_kconfig("CONFIG_HZ=-1\n")  # signed int: -1 fits
    assert value(spec, "CONFIG_HZ") == b"\xff" * 4


def test_unknown_virtual_externs_are_refused_at_load_time_only() -> None:
    spec = ObjectSpec.from_path(str(OBJ / "kconfig_virtual.o"))  # opening works, as in libbpf
    assert {e.name for e in spec.externs} == {"LINUX_NOT_A_THING", "not_config"}
    with pytest.raises(RelocationError, match=r"extern \(kcfg\) 'LINUX_NOT_A_THING': unrecognized virtual extern"):
        spec.check_loadable()
    spec.externs = tuple(e for e in spec.externs if e.name != "LINUX_NOT_A_THING")
    with pytest.raises(RelocationError, match=r"extern \(kcfg\) 'not_config': unrecognized virtual extern"):
        spec.check_loadable()  # weak, but neither CONFIG_* nor LINUX_*


def test_pending_core_is_refused_naming_the_type() -> None:
    spec = ObjectSpec.from_path(str(OBJ / "core.o"))
    spec.check_loadable("core_prog")  # UAPI types: applied against the object's own BTF
    with pytest.raises(RelocationError, match=r"prog 'core_kernel': CO-RE relocation <byte_off> against 'task_struct'"):
        spec.check_loadable("core_kernel")
    with pytest.raises(RelocationError, match="core_kernel"):
        spec.check_loadable()


def test_the_loader_refuses_before_loading() -> None:
    from pybpf import loader

    with pytest.raises(RelocationError, match=r"CONFIG_BPF_SYSCALL' \(strong\): not resolved"):
        loader.load(str(OBJ / "kconfig.o"))
    with pytest.raises(RelocationError, match="task_struct"):
        loader.load(str(OBJ / "core.o"))
