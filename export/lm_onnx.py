"""Write a Llama/Qwen2-style causal LM as an ONNX graph of onnxruntime's fused CPU ops.

torch.onnx spells attention out as some forty small ops per layer; on a 2-core CPU their
launch overhead and the KV copies dominate a 135M model's decode step. This builder writes
the graph node by node with the fused contrib ops that onnxruntime-genai's builder uses:

    per layer: SkipSimplifiedLayerNormalization (residual add + RMSNorm)
               MatMul of the packed Q|K|V weights (+ bias for Qwen2)
               GroupQueryAttention (rotary inside, grouped-query heads, appends to the cache)
               MatMul o_proj; MatMul of packed gate|up, SiLU * up, MatMul down_proj

Interface (names are the contract with runtime/alm.py):
    inputs_embeds (B, N, D), seqlens_k (B,) int32 = P + N - 1, total_sequence_length () int32 = P + N,
    past_k.{i} / past_v.{i} (B, KVH, P or capacity, Dh) for each layer i
    -> logits (B, 1, V) of the last position, present_k.{i} / present_v.{i} (B, KVH, P+N or capacity, Dh)
P tokens are cached; new token j sits at position P + j. When past and present are bound to
the same buffer of some capacity, GroupQueryAttention writes the new K/V into it in place.
The output projection is untied, so it is quantized.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

MS = "com.microsoft"


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.array(value, order="C"), name))  # keeps 0-d scalars
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, domain: str = "", name: str = "", **attrs):
        self.n += 1
        base = name or f"{op_type}_{self.n}"
        outs = [f"{base}/out{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=base, domain=domain, **attrs))
        return outs[0] if n_out == 1 else outs

    def save(self, path: Path, name: str, inputs: list, outputs: list) -> Path:
        """Write the graph as an ONNX model (opset 18 + onnxruntime's contrib ops), one file."""
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(MS, 1)], producer_name="edge-alm"
        )
        model.ir_version = 9
        onnx.save(model, str(path), save_as_external_data=False)
        return path


def _w(linear: torch.nn.Linear) -> np.ndarray:
    return linear.weight.detach().float().numpy().T  # (in, out): x @ W


def _b(linear: torch.nn.Linear) -> np.ndarray | None:
    return None if linear.bias is None else linear.bias.detach().float().numpy()


def lm_dims(lm: torch.nn.Module) -> tuple[int, int, int, int]:
    """(layers, query heads, KV heads, head size) of a Hugging Face causal LM."""
    cfg = lm.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads, head_dim


def rotary_tables(lm: torch.nn.Module, head_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin (max_positions, Dh/2) from the model's own rotary module, so its rope scaling
    (linear, dynamic, llama3 ...) and attention scaling carry over."""
    n = int(lm.config.max_position_embeddings)
    x = torch.zeros(1, 1, head_dim)
    with torch.no_grad():
        cos, sin = lm.model.rotary_emb(x, torch.arange(n)[None])  # (1, n, Dh)
    return cos[0, :, : head_dim // 2].float().numpy(), sin[0, :, : head_dim // 2].float().numpy()


def build_lm_onnx(lm: torch.nn.Module, path: Path) -> Path:
    """Write `lm` (LlamaForCausalLM, Qwen2ForCausalLM, ...) as the fused graph described above."""
    cfg = lm.config
    n_layers, n_heads, n_kv, head_dim = lm_dims(lm)
    d = cfg.hidden_size
    eps = float(cfg.rms_norm_eps)
    g = _Graph()
    cos, sin = rotary_tables(lm, head_dim)
    cos_name, sin_name = g.const("cos_cache", cos), g.const("sin_cache", sin)

    seqlens, total = "seqlens_k", "total_sequence_length"  # graph inputs: the runtime knows the lengths
    layers = lm.model.layers
    residual, pending = "inputs_embeds", None  # pending: the sublayer output not yet added
    for i, layer in enumerate(layers):
        a, mlp = layer.self_attn, layer.mlp
        ln1 = g.const(f"l{i}.ln1", layer.input_layernorm.weight.detach().float().numpy())
        if pending is None:
            h = g.op("SimplifiedLayerNormalization", [residual, ln1], axis=-1, epsilon=eps)
        else:
            h, _, _, residual = g.op(
                "SkipSimplifiedLayerNormalization", [pending, residual, ln1], n_out=4, domain=MS, epsilon=eps
            )
        qkv_w = np.concatenate([_w(a.q_proj), _w(a.k_proj), _w(a.v_proj)], axis=1)
        qkv = g.op("MatMul", [h, g.const(f"l{i}.qkv.w", qkv_w)])  # (B, N, (H + 2 KVH) Dh)
        biases = [_b(a.q_proj), _b(a.k_proj), _b(a.v_proj)]
        if any(b is not None for b in biases):
            sizes = (n_heads * head_dim, n_kv * head_dim, n_kv * head_dim)
            full = [b if b is not None else np.zeros(s, np.float32) for b, s in zip(biases, sizes)]
            qkv = g.op("Add", [qkv, g.const(f"l{i}.qkv.b", np.concatenate(full))])
        attn, _, _ = g.op(
            "GroupQueryAttention",
            [qkv, "", "", f"past_k.{i}", f"past_v.{i}", seqlens, total, cos_name, sin_name],
            n_out=3,
            domain=MS,
            name=f"l{i}.gqa",
            num_heads=n_heads,
            kv_num_heads=n_kv,
            do_rotary=1,
            rotary_interleaved=0,
            scale=float(head_dim**-0.5),
        )
        g.nodes[-1].output[1], g.nodes[-1].output[2] = f"present_k.{i}", f"present_v.{i}"
        o = g.op("MatMul", [attn, g.const(f"l{i}.o.w", _w(a.o_proj))])
        if a.o_proj.bias is not None:
            o = g.op("Add", [o, g.const(f"l{i}.o.b", _b(a.o_proj))])
        ln2 = g.const(f"l{i}.ln2", layer.post_attention_layernorm.weight.detach().float().numpy())
        h, _, _, residual = g.op(
            "SkipSimplifiedLayerNormalization", [o, residual, ln2], n_out=4, domain=MS, epsilon=eps
        )
        ffn = mlp.gate_proj.out_features
        gu = g.op("MatMul", [h, g.const(f"l{i}.gate_up.w", np.concatenate([_w(mlp.gate_proj), _w(mlp.up_proj)], 1))])
        gate, up = g.op("Split", [gu, g.const(f"l{i}.split", np.array([ffn, ffn], np.int64))], n_out=2, axis=-1)
        act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up])  # SiLU(gate) * up
        pending = g.op("MatMul", [act, g.const(f"l{i}.down.w", _w(mlp.down_proj))])
    last = g.op("Slice", [pending, g.const("m1", np.array([-1], np.int64)), g.const("big", np.array([2**62])), "axes1"])
    g.const("axes1", np.array([1], np.int64))
    res_last = g.op("Slice", [residual, "m1", "big", "axes1"])  # only the last position goes on
    norm = g.const("final_norm", lm.model.norm.weight.detach().float().numpy())
    x, _, _, _ = g.op("SkipSimplifiedLayerNormalization", [last, res_last, norm], n_out=4, domain=MS, epsilon=eps)
    head = lm.lm_head.weight.detach().float().numpy().T.copy()  # untied (D, V), so it is quantized
    g.nodes.append(helper.make_node("MatMul", [x, g.const("lm_head.w", head)], ["logits"], name="lm_head"))

    f32 = TensorProto.FLOAT
    kv_in = ["batch", n_kv, "past", head_dim]
    kv_out = ["batch", n_kv, "total", head_dim]
    inputs = [
        helper.make_tensor_value_info("inputs_embeds", f32, ["batch", "new", d]),
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch"]),
        helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
    ]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", 1, cfg.vocab_size])]
    for i in range(n_layers):
        inputs += [helper.make_tensor_value_info(f"past_{kv}.{i}", f32, kv_in) for kv in "kv"]
        outputs += [helper.make_tensor_value_info(f"present_{kv}.{i}", f32, kv_out) for kv in "kv"]
    return g.save(path, "causal_lm", inputs, outputs)
