"""How often cheap guesses of whisper-base's next tokens are right (BlockDecoder design study).

A block decoder is only as fast as its in-block guesses are cheap and as accurate as they are
right. Two kinds are measured against the teacher's own greedy tokens (the int8 bundle's), with
the decoder run in transformers fp32 under teacher forcing:

1. Shortcuts through the teacher itself, untrained: exit after decoder layer k (final norm, tied
   projection), or feed layers k..5 the raw token embedding at the guessed position while earlier
   positions keep their full-depth context (what a Merger sees inside a block).
2. Medusa-style heads trained here: from the final hidden state at position t and the embedding
   of the (already verified) token t+1, head j guesses token t+1+j through the tied projection.
   Trained on synthetic fortunes clips (export/blockdecoder_data.py), scored on others.

    python -m benchmarks.blockdecoder_guesses --train-clips 500 --val-clips 60 --out benchmarks/results/x86-2core
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from edge_alm.export.blockdecoder_data import fortune_sentences, synth
from edge_alm.export.whisper_export import load_hf_whisper
from edge_alm.runtime.features import log_mel

from edge_alm import EdgeALM
from edge_alm.audio import load_audio

DEV = Path("benchmarks/data/clips")


def teacher_pass(rt: EdgeALM, hf, audio: np.ndarray) -> tuple[list[int], tuple, torch.Tensor] | None:
    """The bundle's greedy tokens for `audio`, framed as a teacher-forced sequence, and the fp32
    decoder's hidden states over it (embedding, after each layer; the last is after the final norm)."""
    r = rt.transcribe(audio)
    toks = [t for seg in r.segments for t in seg.tokens]
    if not toks:
        return None
    s = rt.model.special
    ids = [s.sot, s.languages["en"], s.transcribe, *toks, s.eot]
    feats = torch.from_numpy(log_mel(audio, rt.model.manifest.features, n_samples=30 * 16000)[None])
    with torch.no_grad():
        o = hf(input_features=feats, decoder_input_ids=torch.tensor([ids]), output_hidden_states=True)
    return ids, o.decoder_hidden_states, o.encoder_last_hidden_state


def _layer_two_streams(layer, deep: torch.Tensor, shallow: torch.Tensor, enc: torch.Tensor, heads: int):
    """One decoder layer over 2T positions: the deep stream causally, and at each position t a
    shallow input that sees the deep keys before t and itself."""
    t, c = deep.shape[1], deep.shape[2]
    x = torch.cat([deep, shallow], 1)
    inf = float("-inf")
    mask = torch.full((2 * t, 2 * t), inf)
    mask[:t, :t] = torch.triu(torch.full((t, t), inf), 1)
    mask[t:, :t] = torch.triu(torch.full((t, t), inf), 0)
    mask[t:, t:] = torch.where(torch.eye(t, dtype=torch.bool), 0.0, inf)

    def split(z):
        return z.view(1, -1, heads, c // heads).transpose(1, 2)  # (1, H, *, Dh)

    a = layer.self_attn
    h = layer.self_attn_layer_norm(x)
    w = torch.softmax(split(a.q_proj(h) * a.scaling) @ split(a.k_proj(h)).transpose(-1, -2) + mask, -1)
    x = x + a.out_proj((w @ split(a.v_proj(h))).transpose(1, 2).reshape(1, 2 * t, c))
    ca = layer.encoder_attn
    h = layer.encoder_attn_layer_norm(x)
    w = torch.softmax(split(ca.q_proj(h) * ca.scaling) @ split(ca.k_proj(enc)).transpose(-1, -2), -1)
    x = x + ca.out_proj((w @ split(ca.v_proj(enc))).transpose(1, 2).reshape(1, 2 * t, c))
    x = x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))
    return x[:, :t], x[:, t:]


def shortcut_accuracy(rt: EdgeALM, hf, clips: list[Path]) -> dict[str, float]:
    dec = hf.model.decoder
    emb = dec.embed_tokens.weight
    heads = hf.config.decoder_attention_heads
    n_layers = len(dec.layers)
    hits: dict[str, int] = {}
    total = 0
    for path in clips:
        out = teacher_pass(rt, hf, load_audio(path))
        if out is None:
            continue
        ids, hs, enc = out
        target = torch.tensor(ids[4:])  # the next token at positions 3 .. T-2 (after the prompt)
        total += len(target)
        with torch.no_grad():
            for k in range(2, n_layers):
                guess = (dec.layer_norm(hs[k][0, 3:-1]) @ emb.T).argmax(-1)
                hits[f"exit after layer {k - 1}"] = hits.get(f"exit after layer {k - 1}", 0) + int(
                    (guess == target).sum()
                )
            t = len(ids) - 1
            shallow = dec.embed_tokens(torch.tensor([ids[:-1]])) + dec.embed_positions.weight[:t]
            for first in (3, 4):
                deep, sh = hs[first][:, :t], shallow
                for i in range(first, n_layers):
                    deep, sh = _layer_two_streams(dec.layers[i], deep, sh, enc, heads)
                guess = (dec.layer_norm(sh[0, 3:]) @ emb.T).argmax(-1)
                key = f"embedding into layers {first}-{n_layers - 1}"
                hits[key] = hits.get(key, 0) + int((guess == target).sum())
    return {k: v / total for k, v in hits.items()} | {"positions": total}


def guess_corpus(rt: EdgeALM, hf, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(final hidden at t, token t+1, tokens t+2 .. t+4 or -100) over n synthetic clips."""
    rng = random.Random(seed)
    sentences = fortune_sentences()
    rng.shuffle(sentences)
    xs, nxt, ys = [], [], []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            text = sentences[i % len(sentences)]
            if rng.random() < 0.5:
                text += " " + sentences[(i + 1) % len(sentences)]
            out = teacher_pass(rt, hf, synth(text, rng, Path(tmp))[: 28 * 16000])
            if out is None:
                continue
            ids, hs, _ = out
            h = hs[-1][0]
            for p in range(2, len(ids) - 2):
                xs.append(h[p])
                nxt.append(ids[p + 1])
                ys.append([ids[p + 1 + j] if p + 1 + j < len(ids) else -100 for j in (1, 2, 3)])
            if i % 50 == 0:
                print(f"  clip {i}/{n}, {time.time() - t0:.0f} s", flush=True)
    return torch.stack(xs), torch.tensor(nxt), torch.tensor(ys)


class GuessHeads(torch.nn.Module):
    """Head j: [h_t, emb(token t+1)] -> Linear -> + Linear(SiLU(.)) -> LayerNorm -> tied projection."""

    def __init__(self, emb: torch.Tensor, n_heads: int = 3) -> None:
        super().__init__()
        c = emb.shape[1]
        self.emb = emb
        self.inp = torch.nn.ModuleList(torch.nn.Linear(2 * c, c) for _ in range(n_heads))
        self.res = torch.nn.ModuleList(torch.nn.Linear(c, c) for _ in range(n_heads))
        self.norm = torch.nn.ModuleList(torch.nn.LayerNorm(c) for _ in range(n_heads))

    def forward(self, h: torch.Tensor, nxt: torch.Tensor, table: torch.Tensor) -> list[torch.Tensor]:
        x = torch.cat([h, self.emb[nxt]], -1)
        outs = []
        for inp, res, norm in zip(self.inp, self.res, self.norm):
            z = inp(x)
            outs.append(norm(z + res(F.silu(z))) @ table.T)
        return outs


def train_heads(emb: torch.Tensor, train, val, steps: int, batch: int = 256, lr: float = 3e-3) -> dict:
    x, nxt, y = train
    # softmax over the training text's tokens plus every special and timestamp id (full vocabulary
    # at scoring): 20x cheaper a step
    ids = torch.unique(torch.cat([nxt, y[y >= 0], torch.arange(50257, emb.shape[0])]))
    remap = torch.full((emb.shape[0],), -100, dtype=torch.long)
    remap[ids] = torch.arange(len(ids))
    heads = GuessHeads(emb)
    opt = torch.optim.AdamW(heads.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    torch.manual_seed(0)
    for _ in range(steps):
        i = torch.randint(0, len(x), (batch,))
        outs = heads(x[i], nxt[i], emb[ids])
        targets = [remap[y[i, j].clamp(min=0)].masked_fill(y[i, j] < 0, -100) for j in range(len(outs))]
        loss = sum(F.cross_entropy(o, t, ignore_index=-100) for o, t in zip(outs, targets)) / len(outs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    vx, vn, vy = val
    with torch.no_grad():
        outs = heads(vx, vn, emb)
    right = [o.argmax(-1) == vy[:, j] for j, o in enumerate(outs)]
    chain, in_a_row = torch.ones(len(vx), dtype=torch.bool), []
    for r in right:
        chain = chain & r
        in_a_row.append(float(chain.float().mean()))
    return {
        "train_positions": len(x),
        "val_positions": len(vx),
        "steps": steps,
        "final_train_loss": loss.item(),
        "head_accuracy": [float(r.float().mean()) for r in right],
        "right_in_a_row": in_a_row,
        "tokens_per_verify_pass": 1 + sum(in_a_row),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default="models/whisper-base-int8")
    p.add_argument("--hf", default=".cache/whisper-base-hf", help="whisper-base in transformers format")
    p.add_argument("--train-clips", type=int, default=500)
    p.add_argument("--val-clips", type=int, default=60)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    torch.set_num_threads(2)
    rt = EdgeALM.load(args.bundle, threads=2)
    hf = load_hf_whisper(args.hf)
    index = json.loads((DEV / "index.json").read_text())
    dev = [DEV / c["file"] for c in index if c["kind"] in ("clean", "quiet", "near9s")][:16]
    print("shortcuts on", len(dev), "dev clips", flush=True)
    shortcuts = shortcut_accuracy(rt, hf, dev)
    print(json.dumps(shortcuts, indent=1), flush=True)
    print("guess heads: teacher passes over synthetic clips", flush=True)
    val = guess_corpus(rt, hf, args.val_clips, seed=2)
    train = guess_corpus(rt, hf, args.train_clips, seed=1)
    heads = train_heads(hf.model.decoder.embed_tokens.weight.detach(), train, val, args.steps)
    print(json.dumps(heads, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "blockdecoder_guesses.json").write_text(json.dumps({"shortcuts": shortcuts, "heads": heads}, indent=1))


if __name__ == "__main__":
    main()
