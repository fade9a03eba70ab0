"""HyperLogLog sketches of visitor ids: distinct visitors over any window, read from rollup rows.

A distinct count does not add up across hours (the same visitor comes back), so each
rollup row keeps a 2,048-register HyperLogLog sketch (2 KB) of its visitors; the sketch
of a window is the register-wise maximum of its rows' sketches, and its estimate has a
standard error of about 1.04/√2048 ≈ 2.3 % (small counts, under ~5,000, are estimated by
linear counting and are near exact). Flajolet et al., "HyperLogLog: the analysis of a
near-optimal cardinality estimation algorithm" (2007), with a 64-bit hash, so no
large-range correction is needed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

import numpy as np

PRECISION = 11
REGISTERS = 1 << PRECISION  # m
HASH_BITS = 64
ALPHA = 0.7213 / (1 + 1.079 / REGISTERS)


def empty() -> bytearray:
    return bytearray(REGISTERS)


def add(registers: bytearray, item: str) -> None:
    """Count ``item`` into the sketch: register = first PRECISION bits, rank = leading zeros of the rest + 1."""
    value = int.from_bytes(hashlib.blake2b(item.encode(), digest_size=8).digest(), "big")
    index = value >> (HASH_BITS - PRECISION)
    rest = value & ((1 << (HASH_BITS - PRECISION)) - 1)
    rank = (HASH_BITS - PRECISION) - rest.bit_length() + 1
    if rank > registers[index]:
        registers[index] = rank


def of(items: Iterable[str]) -> bytes:
    registers = empty()
    for item in items:
        add(registers, item)
    return bytes(registers)


def union(sketches: Iterable[bytes | memoryview | None]) -> bytes:
    """Register-wise maximum: the sketch of the union of the sets; empty sketches are skipped."""
    merged = np.zeros(REGISTERS, dtype=np.uint8)
    for sketch in sketches:
        if sketch:
            np.maximum(merged, np.frombuffer(bytes(sketch), dtype=np.uint8), out=merged)
    return merged.tobytes()


def estimate(sketch: bytes | memoryview | None) -> int:
    """Estimated number of distinct items (0 for an empty sketch)."""
    if not sketch:
        return 0
    registers = bytes(sketch)
    zeros = registers.count(0)
    if zeros == REGISTERS:
        return 0
    raw = ALPHA * REGISTERS * REGISTERS / sum(2.0 ** -rank for rank in registers)
    if raw <= 2.5 * REGISTERS and zeros:
        return round(REGISTERS * math.log(REGISTERS / zeros))  # linear counting for small sets
    return round(raw)
