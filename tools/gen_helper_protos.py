#!/usr/bin/env python3
"""Generate ``src/pybpf/progtypes/_kernel_tables.py`` from a Linux tree: helper prototypes and the
per-program-type ``*_func_proto`` switches.

usage: tools/gen_helper_protos.py LINUX_SRC_DIR > src/pybpf/progtypes/_kernel_tables.py

Why generated: the ~250 ``struct bpf_func_proto`` initialisers (return type, argument types and
flags, gpl_only, pkt_access...) and the switches that say which helper a program type may call are
data. Extracting them from the reference kernel (6.12) keeps them exact and makes an upgrade a
re-run. The output holds names only (C enumerator and struct names as strings); the meaning lives
in ``pybpf.progtypes.protos``.

The switch extraction records, per function, an ordered list of ``(helper, proto, gate)`` where the
gate is the capability check (``CAP_BPF`` / ``CAP_PERFMON``) that precedes the case, and the
function the ``default:`` label falls through to. Cases whose body picks between several protos
(``prog->sleepable ? ... : ...``) record every candidate; ``protos.py`` chooses.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SOURCES = [
    "kernel/bpf/helpers.c",
    "kernel/bpf/ringbuf.c",
    "kernel/bpf/stackmap.c",
    "kernel/bpf/cgroup.c",
    "kernel/bpf/syscall.c",
    "kernel/bpf/core.c",
    "kernel/bpf/btf.c",
    "kernel/bpf/bpf_iter.c",
    "kernel/bpf/task_iter.c",
    "kernel/bpf/bpf_task_storage.c",
    "kernel/bpf/bpf_cgrp_storage.c",
    "kernel/bpf/bpf_inode_storage.c",
    "kernel/bpf/bpf_lsm.c",
    "kernel/trace/bpf_trace.c",
    "net/core/filter.c",
]

SWITCHES = [
    ("kernel/bpf/helpers.c", "bpf_base_func_proto"),
    ("net/core/filter.c", "bpf_sk_base_func_proto"),
    ("net/core/filter.c", "sk_filter_func_proto"),
    ("net/core/filter.c", "tc_cls_act_func_proto"),
    ("net/core/filter.c", "xdp_func_proto"),
    ("net/core/filter.c", "cg_skb_func_proto"),
    ("net/core/filter.c", "lwt_out_func_proto"),
    ("net/core/filter.c", "lwt_in_func_proto"),
    ("net/core/filter.c", "lwt_xmit_func_proto"),
    ("net/core/filter.c", "lwt_seg6local_func_proto"),
    ("net/core/filter.c", "sock_filter_func_proto"),
    ("net/core/filter.c", "sock_addr_func_proto"),
    ("net/core/filter.c", "sock_ops_func_proto"),
    ("net/core/filter.c", "sk_skb_func_proto"),
    ("net/core/filter.c", "sk_msg_func_proto"),
    ("net/core/filter.c", "flow_dissector_func_proto"),
    ("kernel/bpf/cgroup.c", "cgroup_common_func_proto"),
    ("kernel/bpf/cgroup.c", "cgroup_current_func_proto"),
    ("kernel/trace/bpf_trace.c", "bpf_tracing_func_proto"),
    ("kernel/trace/bpf_trace.c", "kprobe_prog_func_proto"),
    ("kernel/trace/bpf_trace.c", "tp_prog_func_proto"),
    ("kernel/trace/bpf_trace.c", "raw_tp_prog_func_proto"),
    ("kernel/trace/bpf_trace.c", "pe_prog_func_proto"),
    ("kernel/trace/bpf_trace.c", "tracing_prog_func_proto"),
]

FIELDS = ("gpl_only", "pkt_access", "might_sleep", "allow_fastcall", "ret_type", "ret_btf_id")

# Protos defined in files outside the reference subset (net/core/bpf_sk_storage.c): written from
# their documented prototypes.
EXTRA = {
    "bpf_sk_storage_get_proto": {
        "func": "bpf_sk_storage_get", "ret_type": "RET_PTR_TO_MAP_VALUE_OR_NULL",
        "args": ("ARG_CONST_MAP_PTR", "ARG_PTR_TO_BTF_ID_SOCK_COMMON", "ARG_PTR_TO_MAP_VALUE_OR_NULL",
                 "ARG_ANYTHING"),
    },
    "bpf_sk_storage_delete_proto": {
        "func": "bpf_sk_storage_delete", "ret_type": "RET_INTEGER",
        "args": ("ARG_CONST_MAP_PTR", "ARG_PTR_TO_BTF_ID_SOCK_COMMON"),
    },
}


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _protos(root: Path) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for rel in SOURCES:
        text = _strip_comments((root / rel).read_text(errors="replace"))
        for m in re.finditer(r"struct bpf_func_proto\s+(\w+)\s*=\s*\{(.*?)\n\s*\};", text, re.S):
            name, body = m.group(1), m.group(2)
            rec: dict[str, object] = {"file": rel}
            args = ["ARG_DONTCARE"] * 5
            btf = [""] * 5
            sizes = [""] * 5
            for fm in re.finditer(r"\.(\w+)\s*=\s*(.*?),?\s*(?=\n\s*\.|\Z)", body, re.S):
                key, val = fm.group(1), " ".join(fm.group(2).split()).rstrip(",")
                am = re.fullmatch(r"arg(\d)_(type|btf_id|size)", key)
                if am:
                    i = int(am.group(1)) - 1
                    {"type": args, "btf_id": btf, "size": sizes}[am.group(2)][i] = val
                elif key in ("func", *FIELDS):
                    rec[key] = val
                elif key == "allowed":
                    rec["allowed"] = val
            last = max((i for i, a in enumerate(args) if a != "ARG_DONTCARE"), default=-1)
            rec["args"] = tuple(args[: last + 1])
            if any(btf):
                rec["arg_btf_ids"] = tuple(btf[: last + 1])
            if any(sizes):
                rec["arg_sizes"] = tuple(sizes[: last + 1])
            out[name] = rec
    for name, rec in EXTRA.items():
        out.setdefault(name, {"file": "(net/core/bpf_sk_storage.c)", **rec})
    return out


def _function_body(text: str, name: str) -> str:
    m = re.search(rf"^{name}\(enum bpf_func_id func_id,[^)]*\)\n\{{(.*?)\n\}}", text, re.S | re.M)
    if not m:
        raise SystemExit(f"function {name} not found")
    return m.group(1)


def _switch(text: str, name: str) -> tuple[list[tuple[str, tuple[str, ...], str]], str]:
    body = _function_body(_strip_comments(text), name)
    entries: list[tuple[str, tuple[str, ...], str]] = []
    gate = ""
    default = ""
    pending: list[str] = []
    block: list[str] = []
    in_default = False

    def flush() -> None:
        nonlocal pending, block
        if pending:
            joined = " ".join(block)
            cands = re.findall(r"&(\w+_proto\w*)", joined)
            cands += [c + "()" for c in re.findall(r"(bpf_get_\w+_proto)\(", joined)]
            if not cands and "return NULL" in joined:
                cands = []
            inner = re.search(r"return (\w+_func_proto)\(func_id, prog\)", joined)
            if inner and not cands:
                cands = [inner.group(1) + "(...)"]
            entries.extend((helper, tuple(dict.fromkeys(cands)), gate) for helper in pending)
        pending, block = [], []

    depth = 0
    for raw in body.splitlines():
        line = raw.strip()
        level = depth
        depth = max(0, depth + line.count("{") - line.count("}"))
        if line.startswith("switch (func_id)"):
            in_default = False
        if in_default or not pending:
            if re.search(r"bpf_token_capable\([^,]+,\s*CAP_BPF\)|bpf_capable\(\)", line):
                gate = "CAP_BPF"
            if re.search(r"CAP_PERFMON|perfmon_capable\(\)", line):
                gate = "CAP_PERFMON"
        cm = re.match(r"case BPF_FUNC_(\w+):", line)
        if cm:
            if block and pending and any("return" in b or "func =" in b for b in block):
                flush()
            pending.append(cm.group(1))
            in_default = False
            continue
        if line.startswith("default:") and level <= 1:
            flush()
            in_default = True
            continue
        if in_default:
            dm = re.match(r"return (\w+)\(func_id, prog\);", line)
            if dm:
                default = dm.group(1)
            continue
        if pending:
            block.append(line)
    flush()
    if not default:
        tail = re.findall(r"return (\w+_func_proto)\(func_id, prog\);", body)
        if tail:
            default = tail[-1]
    return entries, default


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = Path(sys.argv[1])
    protos = _protos(root)
    out = [
        '"""generated by tools/gen_helper_protos.py from Linux 6.12 — do not edit.',
        "",
        "PROTOS: ``struct bpf_func_proto`` initialisers by C name (C enumerator names as strings).",
        "SWITCHES: ``*_func_proto`` functions: ordered (helper, candidate protos, capability gate), and",
        "the function their ``default:`` falls back to.",
        '"""',
        "",
        "# ruff: noqa: E501",
        "from __future__ import annotations",
        "",
        "PROTOS: dict[str, dict[str, object]] = {",
    ]
    out.extend(f"    {name!r}: {protos[name]!r}," for name in sorted(protos))
    out.append("}")
    out.append("")
    out.append("SWITCHES: dict[str, tuple[tuple[tuple[str, tuple[str, ...], str], ...], str]] = {")
    for rel, fn in SWITCHES:
        text = (root / rel).read_text(errors="replace")
        try:
            entries, default = _switch(text, fn)
        except SystemExit:
            continue
        out.append(f"    {fn!r}: (")
        out.append("        (")
        out.extend(f"            {e!r}," for e in entries)
        out.append("        ),")
        out.append(f"        {default!r},")
        out.append("    ),")
    out.append("}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
