"""Weight quantization of exported graphs with onnxruntime.quantization."""

from __future__ import annotations

import shutil
from pathlib import Path

PRECISIONS = ("fp32", "int8", "int8-block", "int4")


def quantize_graph(
    src: Path, dst: Path, precision: str, keep_fp32: tuple[str, ...] = (), embedding_bits: int = 8
) -> Path:
    """fp32: copy; int8: dynamic (MatMul and Gather weights, one scale per tensor, activations
    quantized per tensor at run time; MatMuls whose node name contains one of `keep_fp32` stay
    fp32; embedding_bits=4: the Gather tables in 4-bit blocks instead, GatherBlockQuantized);
    int8-block / int4: weight-only MatMulNBits with 8 / 4 bits in blocks of 32 and activations
    quantized per block (accuracy level 4), plus GatherBlockQuantized for int4 (block 32, symmetric)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}, expected one of {PRECISIONS}")
    if precision == "fp32":
        shutil.copy(src, dst)
    elif precision == "int8":
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        graph = onnx.load(str(src), load_external_data=False).graph
        keep = [n.name for n in graph.node if n.op_type == "MatMul" and any(k in n.name for k in keep_fp32)]
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gather"] if embedding_bits == 8 else ["MatMul"],
            per_channel=False,
            reduce_range=False,
            nodes_to_exclude=keep,
            # contrib ops (GroupQueryAttention) have no ONNX shape inference: their outputs are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        if embedding_bits == 4:
            _block_quantize(dst, dst, 4, ("Gather",))
    else:
        bits = 8 if precision == "int8-block" else 4
        # int4: Gather too, the token embedding becomes GatherBlockQuantized (else it stays fp32)
        _block_quantize(src, dst, bits, ("MatMul",) if bits == 8 else ("MatMul", "Gather"))
    return dst


def _block_quantize(src: Path, dst: Path, bits: int, ops: tuple[str, ...]) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    q = MatMulNBitsQuantizer(
        onnx.load(str(src)),
        bits=bits,
        block_size=32,
        is_symmetric=True,
        accuracy_level=4,
        op_types_to_quantize=ops,
        quant_axes=(("MatMul", 0), ("Gather", 1)),
    )
    q.process()
    onnx.save(q.model.model, str(dst))
