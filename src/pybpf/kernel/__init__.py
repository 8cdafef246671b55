"""bpf(2) in userspace: the object model, maps in native memory, helpers, pinning and test runs.

* :mod:`pybpf.kernel.syscall` — ``bpf(cmd, attr)``, the one syscall-shaped seam (same
  ``union bpf_attr`` bytes as the live kernel, same errnos);
* :mod:`pybpf.kernel.objects` — :class:`Kernel`: fds, ids, object lifetimes, typed operations;
* :mod:`pybpf.kernel.maps` — every map type, storage in one shared mapping per map;
* :mod:`pybpf.kernel.pin` — the bpffs-like root where objects live and are pinned;
* :mod:`pybpf.kernel.helpers` — helper implementations (Python) by family;
* :mod:`pybpf.kernel.test_run` — ``BPF_PROG_TEST_RUN`` for XDP and skb programs;
* :mod:`pybpf.kernel.custom` — application-defined program types (pybpf as a sandbox).
"""

from __future__ import annotations

from pybpf.kernel.maps.base import Map, MapAttrs
from pybpf.kernel.objects import Kernel, default_kernel, set_default_kernel
from pybpf.kernel.program import Program, ProgramImage

__all__ = ["Kernel", "Map", "MapAttrs", "Program", "ProgramImage", "default_kernel", "set_default_kernel"]
