"""The bpftool-shaped command line: ``pybpf [-j] [-p] [-d] OBJECT COMMAND ...`` (nothing imports this)."""
