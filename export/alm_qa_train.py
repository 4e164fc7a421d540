"""Train the audio-QA model: a pooled MLP adapter and LoRA on SmolLM2's attention, over the
cached encoder frames of the corpus (export/alm_qa_data.py). The LM and the encoder stay frozen.

Resumable (a checkpoint every `ckpt_every` steps), with progress, ETA and held-out scores in
`work/log.jsonl`. The result is one small .npz (adapter + LoRA factors + fingerprints of the
base LM and encoder) that `edge-alm export alm --adapter` turns into a bundle.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from edge_alm.export.alm_graphs import PooledMLPAdapter
from edge_alm.runtime.frame_stats import N_STATS, stats_level_db
from torch import nn

ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")  # targets that live in a layer's MLP
LORA_TARGETS = ("q_proj", "v_proj")  # the default: attention's query and value projections


class LoRALinear(nn.Module):
    """y = W x + (alpha / r) B A x, with W frozen and B starting at zero."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base, self.scale = base, alpha / rank
        self.A = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.A.t() @ self.B.t()) * self.scale


def _owner(layer: nn.Module, name: str) -> nn.Module:
    return layer.mlp if name in MLP_PROJECTIONS else layer.self_attn


def add_lora(lm: nn.Module, rank: int, alpha: float, targets: tuple[str, ...] = LORA_TARGETS) -> list[LoRALinear]:
    """Wrap each layer's `targets` projections (attention's q/k/v/o_proj, the MLP's gate/up/down_proj)."""
    wrapped = []
    for layer in lm.model.layers:
        for name in targets:
            w = LoRALinear(getattr(_owner(layer, name), name), rank, alpha)
            setattr(_owner(layer, name), name, w)
            wrapped.append(w)
    return wrapped


def fingerprint(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().float().contiguous().numpy().tobytes()).hexdigest()[:16]


def lora_keys(j: int, targets: tuple[str, ...] = LORA_TARGETS) -> tuple[str, str]:
    """The weight-file names of the j-th wrapped projection's A and B (layer by layer, targets order)."""
    i, name = divmod(j, len(targets))
    return f"lora.{i}.{targets[name]}.A", f"lora.{i}.{targets[name]}.B"


def merge_lora(lm: nn.Module, weights: dict[str, np.ndarray]) -> None:
    """Add the trained low-rank updates into the LM's own projection weights (for export)."""
    scale = float(weights["lora_scale"])
    with torch.no_grad():
        for key in weights:
            m = re.fullmatch(r"lora\.(\d+)\.(\w+)\.A", key)
            if m:
                layer, name = lm.model.layers[int(m[1])], m[2]
                b = weights[key[:-1] + "B"]
                getattr(_owner(layer, name), name).weight += torch.from_numpy(b @ weights[key] * scale).float()


class Corpus:
    """One split: QA records, cached frames, prompt tokens from the bundle's own template."""

    def __init__(self, split_dir: Path, alm, im_end: int) -> None:
        idx = json.loads((split_dir / "index.json").read_text())
        self.qas, self.dir, self.alm, self.im_end = idx["qas"], split_dir, alm, im_end
        self.clips = {c["id"]: c for c in idx["clips"]}

    def audio(self, clip: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A clip's cached encoder frames (S, C) and frame statistics (S, 3)."""
        name = f"{clip:06d}.npy"
        frames, stats = (np.load(self.dir / d / name).astype(np.float32) for d in ("frames", "stats"))
        return torch.from_numpy(frames), torch.from_numpy(stats)

    def facts(self, stats: torch.Tensor) -> str:
        """The text the runtime places after a clip (prompt.clip_facts), from its cached frame
        statistics: the levels' power mean is the clip's level over the span the encoder hears."""
        if not self.alm.config.prompt.clip_facts:
            return ""
        return self.alm.facts_text(stats_level_db(stats.numpy()))

    def example(self, i: int) -> tuple[list, list[int]]:
        qa = self.qas[i]
        audio = [self.audio(c) for c in qa["clips"]]
        facts = [self.facts(stats) for _, stats in audio]
        parts = self.alm.prompt_parts(qa["question"], len(qa["clips"]), True, facts)
        parts = [audio[p] if isinstance(p, int) else p for p in parts]
        return parts, self.alm.encode(qa["answer"]) + [self.im_end]


def batch_forward(lm, adapter, corpus: Corpus, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Teacher-forced pass over a batch: per-example mean loss on the answer tokens, and the
    predicted first answer token of each row."""
    emb = lm.get_input_embeddings()
    seqs, spans = [], []
    for i in rows:
        parts, answer = corpus.example(i)
        chunks = [adapter(p[0][None], p[1][None])[0] if isinstance(p, tuple) else emb(torch.tensor(p)) for p in parts]
        prompt = torch.cat(chunks)
        seqs.append(torch.cat([prompt, emb(torch.tensor(answer))]))
        spans.append((prompt.shape[0], answer))
    n = max(s.shape[0] for s in seqs)
    x = torch.zeros(len(seqs), n, seqs[0].shape[1])
    mask = torch.zeros(len(seqs), n, dtype=torch.long)
    for b, s in enumerate(seqs):
        x[b, : s.shape[0]], mask[b, : s.shape[0]] = s, 1
    hidden = lm.model(inputs_embeds=x, attention_mask=mask).last_hidden_state  # (B, L, D)
    losses, firsts = [], []
    for b, (start, answer) in enumerate(spans):
        logits = lm.lm_head(hidden[b, start - 1 : start - 1 + len(answer)])  # rows that predict the answer
        losses.append(nn.functional.cross_entropy(logits, torch.tensor(answer)))
        firsts.append(int(logits[0].argmax()))
    return torch.stack(losses).mean(), torch.tensor([a[0] for _, a in spans]), firsts


def train(
    work: Path,
    bundle: Path,
    lm_dir: Path,
    whisper_dir: Path,
    steps: int,
    batch: int = 8,
    lr: float = 1e-3,
    pool: int = 4,
    rank: int = 8,
    alpha: float = 16.0,
    eval_every: int = 100,
    ckpt_every: int = 100,
    eval_rows: int = 128,
    seed: int = 0,
    init: Path | None = None,
    clip_facts: str = "",
    task_weights: dict[str, float] | None = None,
    lora_targets: tuple[str, ...] = LORA_TARGETS,
) -> Path:
    """Train (or resume) and write work/alm-qa.npz. init: start from these trained weights (an
    earlier stage's alm-qa.npz) instead of a fresh adapter and zero LoRA. clip_facts: text
    placed after each clip's audio (AlmPrompt.clip_facts), kept in the weights for export.
    task_weights: draw these tasks' questions that many times as often (others 1). lora_targets:
    the projections LoRA adapts in every layer (see add_lora)."""
    from edge_alm.export.alm_export import load_lm

    from edge_alm import EdgeALM

    torch.set_num_threads(2)
    torch.set_flush_denormal(True)
    work = Path(work)
    alm = EdgeALM.load(bundle, threads=2).alm
    alm.config = replace(alm.config, prompt=replace(alm.config.prompt, clip_facts=clip_facts))
    im_end = alm.config.prompt.stop_tokens[0]
    train_set, held = Corpus(work / "train", alm, im_end), Corpus(work / "heldout", alm, im_end)
    lm = load_lm(lm_dir)
    lm.config._attn_implementation = "sdpa"
    for p in lm.parameters():
        p.requires_grad_(False)
    base_fp = fingerprint(lm.get_input_embeddings().weight)
    enc_fp = whisper_fingerprint(whisper_dir)
    loras = add_lora(lm, rank, alpha, lora_targets)
    torch.manual_seed(seed)
    adapter = PooledMLPAdapter(alm.config.audio.encoder_dim, alm.config.lm.hidden_size, pool, N_STATS)
    params = list(adapter.parameters()) + [p for m in loras for p in (m.A, m.B)]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    ckpt, log = work / "checkpoint.pt", work / "log.jsonl"
    step = 0
    if init is not None and not ckpt.is_file():
        expect = {"base_lm": base_fp, "encoder": enc_fp, "pool": pool, "rank": rank}
        load_weights(init, adapter, loras, expect, lora_targets)
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        adapter.load_state_dict(state["adapter"])
        for m, (a, b) in zip(loras, state["lora"]):
            m.A.data, m.B.data = a, b
        opt.load_state_dict(state["opt"])
        step = state["step"]
        print(f"resumed at step {step}", flush=True)
    rng = np.random.default_rng([seed, step])
    draw = np.array([(task_weights or {}).get(qa["task"], 1.0) for qa in train_set.qas])
    draw /= draw.sum()  # each question's chance of being drawn: its task's weight
    eval_idx = np.random.default_rng(99).choice(len(held.qas), min(eval_rows, len(held.qas)), replace=False)
    t0, first_step = time.time(), step
    while step < steps:
        warm = min(1.0, (step + 1) / 30)
        for g in opt.param_groups:
            g["lr"] = lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        loss, _, _ = batch_forward(lm, adapter, train_set, list(rng.choice(len(train_set.qas), batch, p=draw)))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        rate = (time.time() - t0) / (step - first_step)
        row = {"step": step, "loss": round(loss.item(), 4), "s_per_step": round(rate, 2)}
        if step % eval_every == 0 or step == steps:
            row.update(evaluate(lm, adapter, held, eval_idx))
        if step % 10 == 0 or "heldout_loss" in row:
            print(
                f"step {step}/{steps} loss {row['loss']:.3f} {rate:.2f} s/step ETA {(steps - step) * rate / 60:.0f} min"
                + (
                    f" held-out loss {row['heldout_loss']:.3f} first-token acc {row['heldout_first_token_acc']:.2f}"
                    if "heldout_loss" in row
                    else ""
                ),
                flush=True,
            )
        with open(log, "a") as f:
            f.write(json.dumps(row) + "\n")
        if step % ckpt_every == 0 or step == steps:
            lora_state = [(m.A.data, m.B.data) for m in loras]
            state = {"adapter": adapter.state_dict(), "lora": lora_state, "lora_targets": lora_targets}
            torch.save({**state, "opt": opt.state_dict(), "step": step}, ckpt)
    out = work / "alm-qa.npz"
    meta = {"base_lm": base_fp, "encoder": enc_fp, "clip_facts": clip_facts}
    save_weights(out, adapter, loras, rank, alpha, pool, meta, steps, lora_targets)
    return out


@torch.no_grad()
def evaluate(lm, adapter, corpus: Corpus, rows: np.ndarray, batch: int = 16) -> dict:
    losses, hits = [], 0
    for i in range(0, len(rows), batch):
        loss, want, got = batch_forward(lm, adapter, corpus, [int(r) for r in rows[i : i + batch]])
        losses.append(float(loss) * len(got))
        hits += sum(int(a == b) for a, b in zip(want.tolist(), got))
    return {"heldout_loss": round(sum(losses) / len(rows), 4), "heldout_first_token_acc": round(hits / len(rows), 4)}


def whisper_fingerprint(whisper_dir: Path) -> str:
    from transformers import WhisperForConditionalGeneration

    return fingerprint(WhisperForConditionalGeneration.from_pretrained(str(whisper_dir)).model.encoder.conv1.weight)


def load_weights(path: Path, adapter, loras, expect: dict, targets: tuple[str, ...] = LORA_TARGETS) -> None:
    """An earlier stage's weights into the adapter and LoRA factors; refused on other bases or shapes.
    Projections the earlier stage did not adapt (a wider `targets`) keep their fresh start."""
    w = np.load(path)
    meta = json.loads(str(w["meta"]))
    wrong = {k: (meta.get(k), v) for k, v in expect.items() if meta.get(k) != v}
    if wrong:
        raise ValueError(f"{path}: trained for another base or shape: {wrong}")
    adapter.load_state_dict({k: torch.from_numpy(w[f"adapter.{k}"]) for k in adapter.state_dict()})
    for j, m in enumerate(loras):
        a, b = lora_keys(j, targets)
        if a in w:
            m.A.data, m.B.data = torch.from_numpy(w[a]).clone(), torch.from_numpy(w[b]).clone()


def save_weights(
    out: Path, adapter, loras, rank, alpha, pool, extra: dict, steps, targets: tuple[str, ...] = LORA_TARGETS
) -> None:
    arrays = {f"adapter.{k}": v.numpy() for k, v in adapter.state_dict().items()}
    for j, m in enumerate(loras):
        a, b = lora_keys(j, targets)
        arrays[a], arrays[b] = m.A.detach().numpy(), m.B.detach().numpy()
    meta = {"pool": pool, "rank": rank, "alpha": alpha, "steps": steps, "lora_targets": list(targets), **extra}
    np.savez(out, lora_scale=np.array(alpha / rank), meta=np.array(json.dumps(meta)), **arrays)


def build_and_train(
    work: Path,
    bundle: Path,
    cache: Path,
    speech_clips: int = 3000,
    sound_clips: int = 1200,
    pairs: int = 1500,
    steps: int = 1300,
    batch: int = 8,
    pool: int = 4,
    refs: int = 0,
    init: Path | None = None,
    lr: float = 1e-3,
    clip_facts: str = "",
    task_weights: dict[str, float] | None = None,
    lora_targets: tuple[str, ...] = LORA_TARGETS,
) -> Path:
    """The whole recipe: corpus (train + held-out), training; returns the weights file.
    `bundle` is the untrained alm bundle whose encoder graph and prompt template are used;
    `init`: an earlier stage's weights to go on from (see train)."""
    from edge_alm.export.alm_export import default_smollm2
    from edge_alm.export.alm_qa_data import build_corpus
    from edge_alm.export.whisper_weights import default_whisper_base

    work = Path(work)
    held = (max(speech_clips // 10, 40), max(sound_clips // 8, 24), max(pairs // 10, 20))
    build_corpus(work, bundle, *held, "heldout", n_refs=refs and max(refs // 10, 10))
    build_corpus(work, bundle, speech_clips, sound_clips, pairs, "train", n_refs=refs)
    lm, whisper = default_smollm2(cache), default_whisper_base(cache)
    return train(
        work,
        bundle,
        lm,
        whisper,
        steps,
        batch=batch,
        pool=pool,
        init=init,
        lr=lr,
        clip_facts=clip_facts,
        task_weights=task_weights,
        lora_targets=lora_targets,
    )
