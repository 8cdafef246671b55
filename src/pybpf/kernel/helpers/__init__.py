"""Helper implementations (Python) by family, and the table engines dispatch through.

Each family module (``maps``, ``packet``, ``system``, ``trace``, ``ringbuf``, ``sock``, ``netdev``,
``flow``, ``probe``) exports ``HELPERS``
(``HelperId`` → callable with the vm's helper signature ``(ctx, r1, r2, r3, r4, r5) -> int``).
:func:`helper_table` merges them with the internal functions of contract 2 (the map operations the
verifier's fixups call directly). Prototypes and which program type may call which helper are the
verifier's business (:mod:`pybpf.progtypes`); a helper here trusts its verified arguments but still
never crashes on bad ones (memory accesses go through the vm and fault with the call's pc).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from pybpf.vm import HelperTable

__all__ = ["helper_table", "kernel_helpers"]


@cache
def kernel_helpers() -> dict[int, Any]:
    """Every helper pybpf implements, by id (kernel helper ids and internal-function ids)."""
    from pybpf.kernel.helpers import flow, maps, netdev, packet, probe, ringbuf, sock, system, trace

    table: dict[int, Any] = {}
    for mod in (maps, packet, system, trace, ringbuf, sock, netdev, flow, probe):
        table.update({int(k): v for k, v in mod.HELPERS.items()})
    table.update(maps.INTERNAL())
    return table


def helper_table(extra: Mapping[int, Any] | None = None) -> HelperTable:
    """The vm helper table: kernel helpers plus ``extra`` (application-defined helpers)."""
    table = dict(kernel_helpers())
    if extra:
        table.update(extra)
    return HelperTable(table)
