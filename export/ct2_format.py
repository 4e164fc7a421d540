"""Reader for CTranslate2 `model.bin` files (binary version 6), in plain numpy.

Layout (little-endian): u32 version; string spec name; u32 spec revision; u32 variable
count; per variable: string name, u8 rank, rank x u32 dims, u8 dtype, u32 byte count, raw
bytes; then u32 alias count and (alias, target) string pairs. A string is a u16 length that
counts a trailing NUL, then the bytes including that NUL.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_SUPPORTED_VERSIONS = (5, 6)


@dataclass
class Ct2Model:
    spec: str  # e.g. "WhisperSpec"
    revision: int
    variables: dict[str, np.ndarray]  # aliases resolved to their targets


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out

    def string(self) -> str:
        (length,) = self.unpack("<H")
        raw = bytes(self.data[self.pos : self.pos + length])
        self.pos += length
        return raw.rstrip(b"\0").decode("utf-8")

    def raw(self, n: int) -> memoryview:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def read_ct2_model(path: str | Path) -> Ct2Model:
    """Parse a CTranslate2 model.bin; bf16 variables are widened to float32."""
    data = memoryview(Path(path).read_bytes())
    r = _Reader(data)
    (version,) = r.unpack("<I")
    if version not in _SUPPORTED_VERSIONS:
        raise ValueError(f"{path}: CTranslate2 binary version {version}, expected one of {_SUPPORTED_VERSIONS}")
    spec = r.string()
    (revision,) = r.unpack("<I")
    (count,) = r.unpack("<I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = r.string()
        (rank,) = r.unpack("<B")
        dims = r.unpack(f"<{rank}I") if rank else ()
        (dtype_id,) = r.unpack("<B")
        (nbytes,) = r.unpack("<I")
        raw = r.raw(nbytes)
        if dtype_id == 5:  # bfloat16: take the high half of a float32
            arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif dtype_id in _DTYPES:
            arr = np.frombuffer(raw, _DTYPES[dtype_id])
        else:
            raise ValueError(f"{path}: variable {name!r} has unknown dtype id {dtype_id}")
        variables[name] = arr.reshape(dims)
    (n_alias,) = r.unpack("<I")
    for _ in range(n_alias):
        alias, target = r.string(), r.string()
        variables[alias] = variables[target]
    return Ct2Model(spec=spec, revision=revision, variables=variables)
