"""x86-64 specifics of the JIT: the instruction encoder, the code buffer with branch relaxation, and the
register map / calling convention as data."""
