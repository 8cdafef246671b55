"""Every public entry point that takes a file name takes ``str``, ``bytes`` and any ``os.PathLike``
(``pathlib.Path``), and keeps it as ``str``; other types are a ``TypeError`` (never an fd)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pybpf.elf import ObjectSpec, object_name, read_btf
from pybpf.errors import BtfError, ElfError
from pybpf.kernel import Kernel, MapAttrs
from pybpf.uapi import MapType

OBJ = Path(__file__).resolve().parents[1] / "data" / "objects" / "subprogs.o"


class CustomPath:
    """An ``os.PathLike`` that is not a ``pathlib`` path."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return self.path


@pytest.mark.parametrize("kind", ["str", "Path", "bytes", "PathLike"])
def test_from_path_takes_every_path_type(kind: str) -> None:
    arg = {"str": str(OBJ), "Path": OBJ, "bytes": os.fsencode(OBJ), "PathLike": CustomPath(str(OBJ))}[kind]
    spec = ObjectSpec.from_path(arg)  # type: ignore[arg-type]
    ref = ObjectSpec.from_path(str(OBJ))
    assert spec.path == str(OBJ) and isinstance(spec.path, str)
    assert spec.name == ref.name == "subprogs"
    assert list(spec.programs) == list(ref.programs) and list(spec.maps) == list(ref.maps)
    assert all(spec.programs[n].insns == ref.programs[n].insns for n in ref.programs)


def test_missing_files_are_elf_errors_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.o"
    with pytest.raises(ElfError) as e:
        ObjectSpec.from_path(missing)
    assert str(missing) in str(e.value) and "cannot read" in str(e.value)
    with pytest.raises(ElfError):
        ObjectSpec.from_path(tmp_path)  # a directory


@pytest.mark.parametrize("bad", [3, 2.5, None, ["a.o"]])
def test_other_types_are_type_errors(bad: object) -> None:
    """An int in particular must not be taken for a file descriptor, as ``open()`` would."""
    with pytest.raises(TypeError, match="expected a path"):
        ObjectSpec.from_path(bad)  # type: ignore[arg-type]


def test_labels_and_names_take_paths_too(tmp_path: Path) -> None:
    data = OBJ.read_bytes()
    spec = ObjectSpec.from_bytes(data, name="subprogs", path=OBJ)
    assert spec.path == str(OBJ)
    assert object_name(Path("/x/y/my.bpf.o")) == object_name(b"/x/y/my.bpf.o") == object_name("/x/y/my.bpf.o") == "my"
    btf, _ = read_btf(data, path=OBJ)
    assert btf is not None
    with pytest.raises(ElfError) as e:
        ObjectSpec.from_bytes(b"\x7fELF" + bytes(8), path=tmp_path / "short.o")
    assert str(tmp_path / "short.o") in str(e.value)
    with pytest.raises(BtfError) as b:
        read_btf(b"not btf at all", path=tmp_path / "raw.btf")
    assert str(tmp_path / "raw.btf") in str(b.value)


def test_pin_paths_take_pathlike(tmp_path: Path) -> None:
    """The kernel layer's pin calls (OBJ_PIN / OBJ_GET) take any path type as well."""
    k = Kernel(tmp_path / "bpffs")
    m = k.create_map(MapAttrs(int(MapType.ARRAY), 4, 4, 1))
    k.obj_pin(k.new_fd(m), Path("/sys/fs/bpf/m"))
    assert k.open_pinned(CustomPath("/sys/fs/bpf/m")).id == m.id  # type: ignore[arg-type]
    assert k.obj_get(b"/sys/fs/bpf/m") >= 0
    assert (tmp_path / "bpffs" / "m").exists()
