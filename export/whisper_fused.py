"""Write the Whisper decoder as an ONNX graph of onnxruntime's fused CPU ops.

torch.onnx spells each layer's attention out as dozens of small ops (the whisper-base decoder
step was 404 nodes after onnxruntime's own fusions) and the stacked (L, B, H, T, Dh) cache is
split and concatenated again every step. This builder writes the graph node by node, as
`lm_onnx.py` does for causal LMs:

    per layer: SkipLayerNormalization (residual add + LayerNorm, the previous sublayer's bias)
               MatMuls for Q, K, V (+ bias); GroupQueryAttention with 8 query and
               8 KV heads (plain multi-head attention, causal, no rotary), appending to the cache
               cross-attention: Q MatMul (pre-scaled), MatMul with each layer's cross K
               (transposed), Softmax, MatMul with cross V (a batch of one broadcasts over beams)
               MLP: MatMul fc1, BiasGelu, MatMul fc2

Interface (names are the contract with runtime/seq2seq.py):
    tokens (B, N) int64, seqlens_k (B,) int32 = P + N - 1, total_sequence_length () int32 = P + N,
    logits_from (1,) int64, past_k.{i} / past_v.{i} (B, H, P or capacity, Dh),
    cross_k.{i} / cross_v.{i} (B or 1, H, S, Dh)
    -> logits (B, N - logits_from, V), present_k.{i} / present_v.{i} (B, H, P+N or capacity, Dh)
When past and present are bound to one buffer of some capacity, GroupQueryAttention writes the
new K/V into it in place (runtime/kv_cache.py KVBuffers). The output projection is untied, so
it can be quantized (untie_output).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from edge_alm.export.lm_onnx import MS, _b, _Graph, _w
from onnx import TensorProto, helper


def _ln(g: _Graph, name: str, norm: torch.nn.LayerNorm) -> tuple[str, str]:
    return (
        g.const(f"{name}.w", norm.weight.detach().float().numpy()),
        g.const(f"{name}.b", norm.bias.detach().float().numpy()),
    )


def _add_norm(
    g: _Graph, x: str, residual: str, bias: str, norm: torch.nn.LayerNorm, name: str, eps: float
) -> tuple[str, str]:
    """residual + x + bias, then LayerNorm: (normalised, new residual)."""
    w, b = _ln(g, name, norm)
    h, _, _, residual = g.op("SkipLayerNormalization", [x, residual, w, b, bias], n_out=4, domain=MS, epsilon=eps)
    return h, residual


def build_whisper_decoder_onnx(model: torch.nn.Module, path: Path, untie_output: bool = True) -> Path:
    """Write the decoder of `model` (a Hugging Face WhisperForConditionalGeneration) as above.
    untie_output: the projection as its own (C, V) initializer, which the int8 quantizer compresses;
    else it reads the token table transposed (one fp32 copy)."""
    cfg = model.config
    dec = model.model.decoder
    n_layers, n_heads, d = cfg.decoder_layers, cfg.decoder_attention_heads, cfg.d_model
    head_dim = d // n_heads
    eps = float(dec.layer_norm.eps)
    g = _Graph()

    # token embedding + learned positions P .. P+N-1, P = total - N
    table = g.const("embed_tokens", dec.embed_tokens.weight.detach().float().numpy())
    x = g.op("Gather", [table, "tokens"], name="embed_tokens_gather")  # (B, N, C)
    n = g.op("Gather", [g.op("Shape", ["tokens"]), g.const("one", np.array(1, np.int64))], axis=0)  # N
    total = g.op("Cast", ["total_sequence_length"], to=TensorProto.INT64)
    # a Slice, not a Gather: the int8 export turns Gather tables into 4-bit blocks, and the
    # position table stays fp32 as in the stacked graph (which slices it too)
    pos_table = g.const("embed_positions", dec.embed_positions.weight.detach().float().numpy())
    past = g.op("Unsqueeze", [g.op("Sub", [total, n]), g.const("zero_axis", np.array([0], np.int64))])
    end = g.op("Unsqueeze", [total, "zero_axis"])
    pos = g.op("Slice", [pos_table, past, end, "zero_axis"])  # (N, C)
    residual = g.op("Add", [x, pos])  # (B, N, C)
    heads = g.const("heads_shape", np.array([0, 0, n_heads, head_dim], np.int64))
    merged = g.const("merged_shape", np.array([0, 0, d], np.int64))
    scale = float(head_dim**-0.5)

    pending, pending_bias = None, None  # the last sublayer's output and bias, not yet added
    for i, layer in enumerate(dec.layers):
        a, c = layer.self_attn, layer.encoder_attn
        if pending is None:
            w, b = _ln(g, f"l{i}.ln1", layer.self_attn_layer_norm)
            h = g.op("LayerNormalization", [residual, w, b], axis=-1, epsilon=eps)
        else:
            h, residual = _add_norm(g, pending, residual, pending_bias, layer.self_attn_layer_norm, f"l{i}.ln1", eps)
        # Q, K and V as three MatMuls, as in the stacked graph: int8 gives each weight its own
        # scale (one packed weight would share one)
        q = g.op("Add", [g.op("MatMul", [h, g.const(f"l{i}.q.w", _w(a.q_proj))]), g.const(f"l{i}.q.b", _b(a.q_proj))])
        k = g.op("MatMul", [h, g.const(f"l{i}.k.w", _w(a.k_proj))])  # k_proj has no bias
        v = g.op("Add", [g.op("MatMul", [h, g.const(f"l{i}.v.w", _w(a.v_proj))]), g.const(f"l{i}.v.b", _b(a.v_proj))])
        attn, _, _ = g.op(
            "GroupQueryAttention",
            [q, k, v, f"past_k.{i}", f"past_v.{i}", "seqlens_k", "total_sequence_length"],
            n_out=3,
            domain=MS,
            name=f"l{i}.gqa",
            num_heads=n_heads,
            kv_num_heads=n_heads,
            do_rotary=0,
            scale=scale,
        )
        g.nodes[-1].output[1], g.nodes[-1].output[2] = f"present_k.{i}", f"present_v.{i}"
        o = g.op("MatMul", [attn, g.const(f"l{i}.o.w", _w(a.out_proj))])
        o_b = g.const(f"l{i}.o.b", _b(a.out_proj))
        h, residual = _add_norm(g, o, residual, o_b, layer.encoder_attn_layer_norm, f"l{i}.ln2", eps)
        # cross-attention on the encoder's K/V; the softmax scale is folded into the Q weights
        q = g.op(
            "Add",
            [
                g.op("MatMul", [h, g.const(f"l{i}.cq.w", _w(c.q_proj) * scale)]),
                g.const(f"l{i}.cq.b", _b(c.q_proj) * scale),
            ],
        )
        q = g.op("Transpose", [g.op("Reshape", [q, heads])], perm=[0, 2, 1, 3])  # (B, H, N, Dh)
        kt = g.op("Transpose", [f"cross_k.{i}"], perm=[0, 1, 3, 2])  # (B|1, H, Dh, S): fused into the MatMul
        p = g.op("Softmax", [g.op("MatMul", [q, kt])], axis=-1)  # (B, H, N, S)
        ctx = g.op("Transpose", [g.op("MatMul", [p, f"cross_v.{i}"])], perm=[0, 2, 1, 3])  # (B, N, H, Dh)
        o = g.op("MatMul", [g.op("Reshape", [ctx, merged]), g.const(f"l{i}.co.w", _w(c.out_proj))])
        co_b = g.const(f"l{i}.co.b", _b(c.out_proj))
        h, residual = _add_norm(g, o, residual, co_b, layer.final_layer_norm, f"l{i}.ln3", eps)
        f = g.op(
            "BiasGelu",
            [g.op("MatMul", [h, g.const(f"l{i}.fc1.w", _w(layer.fc1))]), g.const(f"l{i}.fc1.b", _b(layer.fc1))],
            domain=MS,
        )
        pending = g.op("MatMul", [f, g.const(f"l{i}.fc2.w", _w(layer.fc2))])
        pending_bias = g.const(f"l{i}.fc2.b", _b(layer.fc2))

    # only positions from logits_from on go through the final norm and the projection
    big, axes = g.const("big", np.array([2**62], np.int64)), g.const("axes1", np.array([1], np.int64))
    last = g.op("Slice", [pending, "logits_from", big, axes])
    res_last = g.op("Slice", [residual, "logits_from", big, axes])
    x, _ = _add_norm(g, last, res_last, pending_bias, dec.layer_norm, "final_ln", eps)
    if untie_output:
        proj = dec.embed_tokens.weight.detach().float().numpy().T.copy()  # (C, V)
        g.nodes.append(helper.make_node("MatMul", [x, g.const("proj.w", proj)], ["logits"], name="proj"))
    else:
        g.nodes.append(helper.make_node("FusedMatMul", [x, table], ["logits"], name="proj", domain=MS, transB=1))

    f32 = TensorProto.FLOAT
    inputs = [
        helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "new"]),
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch"]),
        helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
        helper.make_tensor_value_info("logits_from", TensorProto.INT64, [1]),
    ]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", "new_logits", cfg.vocab_size])]
    for i in range(n_layers):
        inputs += [
            helper.make_tensor_value_info(f"past_{kv}.{i}", f32, ["batch", n_heads, "past", head_dim]) for kv in "kv"
        ]
        outputs += [
            helper.make_tensor_value_info(f"present_{kv}.{i}", f32, ["batch", n_heads, "total", head_dim])
            for kv in "kv"
        ]
    for kv in "kv":
        inputs += [
            helper.make_tensor_value_info(f"cross_{kv}.{i}", f32, ["cross_batch", n_heads, "audio_positions", head_dim])
            for i in range(n_layers)
        ]
    return g.save(path, "whisper_decoder", inputs, outputs)
