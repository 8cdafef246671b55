"""Kconfig externs (``extern int CONFIG_HZ __kconfig;``): their types, their values, and what a
loader must refuse.

libbpf lays every ``.kconfig`` extern out in one read-only array map when it opens an object (the
reader does the same, :mod:`pybpf.elf.load`) and fills the map when it loads the object: the
virtual ``LINUX_*`` externs it computes itself, the ``CONFIG_*`` ones come from the system's
Kconfig (``/boot/config-$(uname -r)`` or ``/proc/config.gz``) or from Kconfig text the caller
passes (``bpf_object_open_opts.kconfig``). The reader fills the virtual externs for Linux 6.12 at
once. This module supplies the rest with libbpf's rules and messages:

* :func:`kcfg_type` — libbpf's ``find_kcfg_type``: which C types a kconfig extern may have;
* :func:`set_kconfig` — libbpf's ``bpf_object__process_kconfig_line`` over Kconfig text (``y``/``n``/
  ``m`` for bools and tristates, ``"..."`` for char arrays, integers with C's base prefixes);
* :func:`check_loadable` — libbpf's checks in ``bpf_object__resolve_externs`` (an unknown virtual
  extern, a strong extern without a value) plus the CO-RE relocations no target BTF resolved: what
  a loader must refuse before handing a program to ``BPF_PROG_LOAD``, each naming the symbol.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from pybpf.btf.spec import BtfSpec
from pybpf.btf.types import Array, Enum, Enum64, Int, IntEncoding
from pybpf.errors import RelocationError

if TYPE_CHECKING:
    from pybpf.elf.spec import Extern, ObjectSpec

__all__ = ["KERNEL_VERSION_6_12", "VIRTUAL_KCONFIG", "KcfgType", "check_loadable", "kcfg_type", "set_kconfig"]

KERNEL_VERSION_6_12 = (6 << 16) | (12 << 8)
"""``LINUX_KERNEL_VERSION`` as pybpf reports it: the reference kernel, 6.12.0."""

VIRTUAL_KCONFIG: dict[str, int] = {
    "LINUX_KERNEL_VERSION": KERNEL_VERSION_6_12,
    "LINUX_HAS_BPF_COOKIE": 1,
    "LINUX_HAS_SYSCALL_WRAPPER": 1,
}
"""The virtual externs libbpf fills itself, with their values on Linux 6.12."""

_TRI_NO, _TRI_YES, _TRI_MODULE = 0, 1, 2  # enum libbpf_tristate


class KcfgType(enum.Enum):
    """libbpf's ``enum kcfg_type``: the C types a kconfig extern may have."""

    UNKNOWN = "unknown"
    CHAR = "char"
    BOOL = "bool"
    INT = "int"
    TRISTATE = "tristate"
    CHAR_ARR = "char array"


def kcfg_type(btf: BtfSpec, tid: int) -> tuple[KcfgType, bool]:
    """libbpf's ``find_kcfg_type``: the kconfig type of BTF type ``tid`` and whether it is signed."""
    t = btf.types[btf.skip_mods_and_typedefs(tid)]
    if isinstance(t, Int):
        if t.encoding & IntEncoding.BOOL:
            return (KcfgType.BOOL if t.size == 1 else KcfgType.UNKNOWN), False
        signed = bool(t.encoding & IntEncoding.SIGNED)
        if t.size == 1:
            return KcfgType.CHAR, signed
        if t.size not in (2, 4, 8):
            return KcfgType.UNKNOWN, False
        return KcfgType.INT, signed
    if isinstance(t, Enum | Enum64):
        ok = t.name == "libbpf_tristate" and (isinstance(t, Enum64) or t.size == 4)
        return (KcfgType.TRISTATE if ok else KcfgType.UNKNOWN), False
    if isinstance(t, Array):
        if t.nelems == 0 or kcfg_type(btf, t.type)[0] != KcfgType.CHAR:
            return KcfgType.UNKNOWN, False
        return KcfgType.CHAR_ARR, False
    return KcfgType.UNKNOWN, False


# -- values ------------------------------------------------------------------------------------


def set_kconfig(spec: ObjectSpec, config: str | Mapping[str, str | int | bool]) -> None:
    """Give the object's ``CONFIG_*`` externs values, as libbpf's ``kconfig`` open option does.

    ``config`` is Kconfig text (``CONFIG_HZ=250``, ``CONFIG_X=y``, ``CONFIG_S="text"``; other
    lines are ignored) or a mapping ``{"CONFIG_HZ": 250, "CONFIG_X": True, "CONFIG_S": '"text"'}``
    (``True``/``False`` stand for ``y``/``n``; strings are Kconfig value text, so char arrays keep
    their quotes). An extern that already has a value keeps it, as in libbpf. The ``.kconfig``
    map's initial data and the :class:`~pybpf.elf.spec.Extern` records are updated in place; a value
    that does not fit the extern's type raises :class:`~pybpf.errors.RelocationError` in libbpf's
    words.
    """
    if isinstance(config, Mapping):
        lines = [f"{k}={_kconfig_text(v)}" for k, v in config.items()]
    else:
        lines = config.splitlines()
    kmap = next((m for m in spec.maps.values() if m.origin == "kconfig"), None)
    if kmap is None:
        return
    data = bytearray(kmap.data or bytes(kmap.value_size))
    externs = {e.name: e for e in spec.externs if e.kind == "kconfig"}
    done: dict[str, Extern] = {}
    for line in lines:
        ext = _process_line(spec, line, externs, data)
        if ext is not None:
            externs[ext.name] = done[ext.name] = ext
    kmap.data = bytes(data)
    spec.externs = tuple(done.get(e.name, e) for e in spec.externs)


def _kconfig_text(v: str | int | bool) -> str:
    if isinstance(v, bool):
        return "y" if v else "n"
    return str(v)


def _process_line(spec: ObjectSpec, line: str, externs: dict[str, Extern], data: bytearray) -> Extern | None:
    """libbpf's ``bpf_object__process_kconfig_line``: the extern it set, or ``None``."""
    if not line.startswith("CONFIG_"):
        return None
    name, sep, value = line.rstrip("\n").partition("=")
    if not sep:
        raise RelocationError(f"failed to parse '{line}': no separator", path=spec.path)
    if not value:
        raise RelocationError(f"failed to parse '{name}=': no value", path=spec.path)
    ext = externs.get(name)
    if ext is None or ext.resolved:
        return None
    assert spec.btf is not None  # kconfig externs exist only with BTF
    ktype, signed = kcfg_type(spec.btf, ext.type_id)
    where = slice(ext.offset, ext.offset + ext.size)
    if value[0] in "ynm":
        data[where] = _tristate_value(spec, ext, ktype, value[0])
    elif value[0] == '"':
        data[where] = _string_value(spec, ext, ktype, value)
    else:
        num = _parse_u64(value)
        if num is None:
            raise RelocationError(f"extern (kcfg) '{name}': value '{value}' isn't a valid integer", path=spec.path)
        if ktype not in (KcfgType.INT, KcfgType.CHAR):
            raise RelocationError(f"extern (kcfg) '{name}': value '{value}' implies integer type", path=spec.path)
        data[where] = _number_value(spec, ext, signed, num)
    return replace(ext, resolved=True)


def _tristate_value(spec: ObjectSpec, ext: Extern, ktype: KcfgType, value: str) -> bytes:
    if ktype == KcfgType.BOOL:
        if value == "m":
            raise RelocationError(
                f"extern (kcfg) '{ext.name}': value '{value}' implies tristate or char type", path=spec.path
            )
        return bytes([value == "y"])
    if ktype == KcfgType.TRISTATE:
        tri = {"y": _TRI_YES, "m": _TRI_MODULE, "n": _TRI_NO}[value]
        return tri.to_bytes(ext.size, "little")
    if ktype == KcfgType.CHAR:
        return value.encode()
    raise RelocationError(
        f"extern (kcfg) '{ext.name}': value '{value}' implies bool, tristate, or char type", path=spec.path
    )


def _string_value(spec: ObjectSpec, ext: Extern, ktype: KcfgType, value: str) -> bytes:
    if ktype != KcfgType.CHAR_ARR:
        raise RelocationError(f"extern (kcfg) '{ext.name}': value '{value}' implies char array type", path=spec.path)
    if len(value) < 2 or not value.endswith('"'):
        raise RelocationError(f"extern (kcfg) '{ext.name}': invalid string config '{value}'", path=spec.path)
    text = value[1:-1].encode()[: ext.size - 1]  # libbpf truncates (with a warning) and terminates
    return text.ljust(ext.size, b"\0")


def _parse_u64(text: str) -> int | None:
    """C's ``strtoull(text, &end, 0)`` that must consume all of ``text``: leading blanks, a sign
    (a minus negates modulo 2**64), ``0x`` hex, ``0`` octal, else decimal. ``None`` if invalid."""
    s = text.lstrip(" \t\n\v\f\r")
    neg = s[:1] == "-"
    if s[:1] in "+-" and s:
        s = s[1:]
    base = 10
    if s[:2].lower() == "0x" and len(s) > 2:
        s, base = s[2:], 16
    elif s[:1] == "0" and len(s) > 1:
        s, base = s[1:], 8
    try:
        value = int(s, base) if s and s.isascii() and s.isalnum() else None
    except ValueError:
        value = None
    if value is None or value >> 64:  # strtoull: ERANGE
        return None
    return (-value if neg else value) & 0xFFFFFFFFFFFFFFFF


def _number_value(spec: ObjectSpec, ext: Extern, signed: bool, num: int) -> bytes:
    """libbpf's ``set_kcfg_value_num`` for an integer or char extern (range checked like
    ``is_kcfg_value_in_range``: the u64 must fit the extern's size without losing information)."""
    bits = ext.size * 8
    if bits < 64:
        fits = (num + (1 << (bits - 1))) % (1 << 64) < (1 << bits) if signed else num >> bits == 0
        if not fits:
            raise RelocationError(
                f"extern (kcfg) '{ext.name}': value '{num}' doesn't fit in {ext.size} bytes", path=spec.path
            )
    return (num & ((1 << bits) - 1)).to_bytes(ext.size, "little")


# -- what a loader must refuse ---------------------------------------------------------------


def check_loadable(spec: ObjectSpec, program: str | None = None) -> None:
    """Raise :class:`~pybpf.errors.RelocationError` for what the reader left unfinished and a
    loader cannot pass to the kernel — libbpf's load-time checks, in its words:

    * a ``.kconfig`` extern that is neither ``CONFIG_*`` nor a known virtual one (weak
      ``LINUX_*`` ones default to zero): ``extern (kcfg) 'X': unrecognized virtual extern``;
    * a strong ``.kconfig`` extern nobody gave a value (:func:`set_kconfig`):
      ``extern 'CONFIG_X' (strong): not resolved``;
    * a CO-RE relocation of ``program`` (every autoloaded program when ``None``) still pending
      because no target BTF was given (``ObjectSpec.from_path(..., core_target=...)``).

    kfuncs and ``__ksym`` variables need the kernel's BTF ids; refusing them is the loader's call.
    """
    for e in spec.externs:
        if e.kind != "kconfig" or e.resolved:
            continue
        if not e.name.startswith("CONFIG_") and (not e.name.startswith("LINUX_") or not e.is_weak):
            raise RelocationError(f"extern (kcfg) '{e.name}': unrecognized virtual extern", path=spec.path)
        if not e.is_weak:
            raise RelocationError(
                f"extern '{e.name}' (strong): not resolved (give it a value with ObjectSpec.set_kconfig)",
                path=spec.path,
            )
    progs = [spec.program(program)] if program is not None else [p for p in spec.programs.values() if p.autoload]
    for p in progs:
        for c in p.core_relocations:
            if c.status == "pending":
                raise RelocationError(
                    f"prog '{p.name}': {c.reason}; read the object with core_target=<that BTF>", path=spec.path
                )
