"""Export variants and session caching on the tiny model."""

import numpy as np
from edge_alm.export.whisper_export import build_whisper_bundle
from edge_alm.runtime.manifest import load_manifest

from edge_alm import EdgeALM


def test_int8_and_int4_decoders_export_and_run(tiny_hf, tmp_path):
    out = build_whisper_bundle(tiny_hf, tmp_path / "q", quantize="int8", decoder_quantize="int4")
    m = load_manifest(out)
    assert m.graphs["encoder"].precision == "int8" and m.graphs["decoder"].precision == "int4"
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / "decoder.onnx")).graph.node}
    assert "MatMulNBits" in ops  # the untied output projection is quantized too
    assert "GatherBlockQuantized" in ops  # and so is the token embedding
    r = EdgeALM.load(out, threads=1).transcribe((np.random.default_rng(0).standard_normal(16000) * 0.1, 16000))
    assert isinstance(r.text, str)


def test_int8_decoder_keeps_its_token_table_in_4_bit_blocks(tiny_hf, tmp_path):
    import onnx

    out = build_whisper_bundle(tiny_hf, tmp_path / "q", quantize="int8")
    ops = [n.op_type for n in onnx.load(str(out / "decoder.onnx")).graph.node]
    assert "GatherBlockQuantized" in ops and "MatMulInteger" in ops and "MatMulNBits" not in ops
    r = EdgeALM.load(out, threads=1).transcribe((np.random.default_rng(0).standard_normal(16000) * 0.1, 16000))
    assert isinstance(r.text, str)


def test_optimized_graph_cached_on_first_load(bundle_copy):
    x = (np.random.default_rng(1).standard_normal(24000) * 0.1).astype(np.float32)
    first = EdgeALM.load(bundle_copy, threads=1).transcribe((x, 16000), language="en")
    cached = list((bundle_copy / ".cache").glob("*.optimized.onnx"))
    assert {p.name.split(".")[0] for p in cached} == {"encoder", "decoder"}
    second = EdgeALM.load(bundle_copy, threads=1).transcribe((x, 16000), language="en")
    assert [s.tokens for s in first.segments] == [s.tokens for s in second.segments]


def test_language_detection_picks_a_known_language(tiny_bundle):
    m = EdgeALM.load(tiny_bundle, threads=1)
    r = m.transcribe((np.random.default_rng(2).standard_normal(16000) * 0.1, 16000), language=None)
    assert r.language in m.manifest.tokens.languages


def test_quantization_check_catches_a_wrong_graph(tiny_bundle, tmp_path):
    """Graphs of another model stand in for a broken quantizer: the check must refuse them."""
    import pytest
    from conftest import tiny_whisper_dir
    from edge_alm.export.whisper_export import MIN_QUANT_COSINE, check_quantized

    other = build_whisper_bundle(tiny_whisper_dir(tmp_path / "hf", seed=1), tmp_path / "b", quantize="fp32")
    same = (tiny_bundle / "encoder.onnx", tiny_bundle / "decoder.onnx")
    sot = load_manifest(tiny_bundle).tokens.sot
    assert check_quantized(same, same, sot, MIN_QUANT_COSINE) > 0.999
    with pytest.raises(RuntimeError, match="drift from fp32"):
        check_quantized(same, (other / "encoder.onnx", other / "decoder.onnx"), sot, MIN_QUANT_COSINE)


def test_fused_int8_decoder_quantizes_its_weights_but_not_the_position_table(tiny_hf, tmp_path):
    """--decoder-graph fused, int8: every weight MatMul int8, the token table in 4-bit blocks,
    the position table left fp32 as in the stacked graph (it is sliced, not gathered), and the
    bundle transcribes with beams too."""
    import onnx

    out = build_whisper_bundle(tiny_hf, tmp_path / "q", quantize="int8", decoder_graph="fused")
    nodes = onnx.load(str(out / "decoder.onnx")).graph.node
    ops = [n.op_type for n in nodes]
    assert ops.count("GatherBlockQuantized") == 1 and ops.count("GroupQueryAttention") == 2
    assert ops.count("MatMulInteger") == 2 * 8 + 1  # q k v o, cross q o, fc1 fc2 per layer, and the projection
    x = (np.random.default_rng(0).standard_normal(16000) * 0.1, 16000)
    m = EdgeALM.load(out, threads=1)
    assert isinstance(m.transcribe(x).text, str) and isinstance(m.transcribe(x, beam_size=3).text, str)
