"""The CTranslate2 reader on a small hand-written model.bin (format facts from the reference)."""

import struct

import numpy as np
import pytest
from edge_alm.export.ct2_format import read_ct2_model


def _string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _write(path, variables, aliases, version=6):
    out = struct.pack("<I", version) + _string("WhisperSpec") + struct.pack("<I", 3)
    out += struct.pack("<I", len(variables))
    for name, (dtype_id, arr) in variables.items():
        out += _string(name) + struct.pack("<B", arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape)
        raw = arr.tobytes()
        out += struct.pack("<B", dtype_id) + struct.pack("<I", len(raw)) + raw
    out += struct.pack("<I", len(aliases))
    for a, t in aliases.items():
        out += _string(a) + _string(t)
    path.write_bytes(out)


def test_reads_dtypes_shapes_and_aliases(tmp_path):
    w = np.arange(12, dtype=np.float16).reshape(3, 4)
    f32 = np.array([1.5, -2.0], np.float32)
    bf16 = (f32.view(np.uint32) >> 16).astype(np.uint16)
    heads = np.array(8, np.int16)
    _write(
        tmp_path / "model.bin",
        {"decoder/embeddings/weight": (4, w), "x/bf": (5, bf16), "decoder/num_heads": (2, heads)},
        {"decoder/projection/weight": "decoder/embeddings/weight"},
    )
    m = read_ct2_model(tmp_path / "model.bin")
    assert m.spec == "WhisperSpec" and m.revision == 3
    np.testing.assert_array_equal(m.variables["decoder/embeddings/weight"], w)
    np.testing.assert_array_equal(m.variables["decoder/projection/weight"], w)
    np.testing.assert_array_equal(m.variables["x/bf"], f32)
    assert int(m.variables["decoder/num_heads"]) == 8


def test_unknown_version_is_a_clear_error(tmp_path):
    _write(tmp_path / "model.bin", {}, {}, version=99)
    with pytest.raises(ValueError, match="binary version 99"):
        read_ct2_model(tmp_path / "model.bin")
