"""Blockify + distil: initialise a BlockDecoder from Whisper and train it on the teacher's
pseudo-labels (see blockdecoder_data.py). Resumable, with progress, ETA and held-out WER.

Trained: the text encoder layers and norm, the Merger (except its frozen audio K/V
projections) and the output norm. Frozen: token and position embeddings (tied output).
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from edge_alm.export.blockdecoder_data import TOP_K, load_corpus
from edge_alm.export.blockdecoder_model import BlockDecoder
from tqdm import tqdm

PROMPT_LEN = 3  # <|startoftranscript|> <|en|> <|transcribe|>
PREFETCH = 4  # batches read ahead


def trainable(bd: BlockDecoder) -> list[torch.nn.Parameter]:
    for p in (*bd.embed.parameters(), *bd.pos.parameters()):
        p.requires_grad_(False)
    return [p for p in bd.parameters() if p.requires_grad]


def clip_audio_kv(z, n_merger: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One cached clip's audio K/V for a Merger of n_merger layers, each (Lm, H, S, Dh) fp32
    (the corpus keeps the last decoder layers; a Merger of n uses the last n)."""
    return tuple(torch.from_numpy(z[name][-n_merger:].astype(np.float32)) for name in ("k", "v"))


def _batch(rows: list[dict], corpus: Path, eot: int, n_merger: int):
    """Tokens (B, T), label mask, audio K/V (Lm, B, H, S, Dh), and the teacher's top-K soft
    targets per label row (ids, probs: (N, K); rows of clips without them get zero weight)."""
    t = max(len(r["tokens"]) for r in rows)
    tokens = torch.full((len(rows), t), eot, dtype=torch.long)
    mask = torch.zeros(len(rows), t, dtype=torch.bool)
    ks, vs, top_ids, top_p = [], [], [], []
    for i, r in enumerate(rows):
        n = len(r["tokens"])
        tokens[i, :n] = torch.tensor(r["tokens"])
        mask[i, PROMPT_LEN:n] = True
        z = np.load(corpus / r["file"])
        k, v = clip_audio_kv(z, n_merger)
        ks.append(k)
        vs.append(v)
        if "top_ids" in z:
            top_ids.append(torch.from_numpy(z["top_ids"].astype(np.int64)))
            top_p.append(torch.from_numpy(np.exp(z["top_logp"].astype(np.float32))))
        else:
            top_ids.append(torch.zeros(n - PROMPT_LEN, TOP_K, dtype=torch.long))
            top_p.append(torch.zeros(n - PROMPT_LEN, TOP_K))
    soft = torch.cat(top_ids), torch.cat(top_p)
    return tokens, mask, (torch.stack(ks, 1), torch.stack(vs, 1)), soft


def distillation_loss(logits: torch.Tensor, labels: torch.Tensor, soft: tuple[torch.Tensor, torch.Tensor]):
    """Cross-entropy on the teacher's greedy tokens plus cross-entropy against its top-K
    probabilities (logits (N, V), labels (N,), soft ids/probs (N, K))."""
    logp = torch.log_softmax(logits, dim=-1)
    hard = -logp.gather(1, labels[:, None]).mean()
    ids, probs = soft
    return hard + -(probs * logp.gather(1, ids)).sum(1).mean()


def vocab_sample(base: torch.Tensor, soft_ids: torch.Tensor, vocab: int, n_random: int, rng: random.Random):
    """The output rows a step trains on: every token the corpus labels use (and all special and
    timestamp tokens: `base`), this batch's soft-target ids, and `n_random` others, so the rest
    of the vocabulary is still pushed down. Returns the sorted ids and a full-vocab -> row map.
    On 2 cores the full 51,865-way projection (and its backward) is most of a step."""
    extra = torch.tensor([rng.randrange(vocab) for _ in range(n_random)], dtype=torch.long)
    ids = torch.unique(torch.cat([base, soft_ids.flatten(), extra]))  # sorted
    where = torch.full((vocab,), -1, dtype=torch.long)
    where[ids] = torch.arange(len(ids))
    return ids, where


def length_batches(rows: list[dict], batch: int, rng: random.Random):
    """Endless batches of clips of similar token length (little padding), in random order."""
    while True:
        order = list(rows)
        rng.shuffle(order)
        for i in range(0, len(order), batch * 32):
            chunk = sorted(order[i : i + batch * 32], key=lambda r: len(r["tokens"]))
            groups = [chunk[j : j + batch] for j in range(0, len(chunk), batch)]
            rng.shuffle(groups)
            yield from (g for g in groups if len(g) == batch)


def random_block_starts(t: int, max_block: int, rng: random.Random) -> list[int]:
    starts, s = [], PROMPT_LEN
    while s < t:
        starts.append(s)
        s += rng.randint(1, max_block)
    return starts


def evaluate(bd: BlockDecoder, rows: list[dict], corpus: Path, tokenizer, eot: int, block: int) -> dict:
    import jiwer

    bd.eval()
    hyps, refs = [], []
    for r in rows:
        z = np.load(corpus / r["file"])
        kv = tuple(t[:, None] for t in clip_audio_kv(z, len(bd.merger_layers)))  # (Lm, 1, H, S, Dh)
        out = bd.greedy(None, r["tokens"][:PROMPT_LEN], block, len(r["tokens"]) + 8, eot, audio_kv=kv)
        hyps.append(tokenizer.decode([t for t in out if t < eot]).strip().lower())  # text tokens only
        refs.append(r["teacher"].lower())
    bd.train()
    pairs = [(a, b) for a, b in zip(refs, hyps) if a.strip()]
    return {
        "wer_vs_teacher": 100 * jiwer.wer([a for a, _ in pairs], [b for _, b in pairs]),
        "examples": list(zip(refs, hyps))[:3],
    }


def train(
    whisper_dir: str | Path,
    corpus: str | Path,
    out: str | Path,
    n_text: int = 4,
    n_merger: int = 2,
    steps: int = 2000,
    batch: int = 16,
    lr: float = 3e-4,
    max_block: int = 8,
    eval_every: int = 500,
    held_out: int = 40,
    seed: int = 0,
    n_random_vocab: int = 2048,
) -> Path:
    from tokenizers import Tokenizer
    from transformers import WhisperForConditionalGeneration

    out, corpus = Path(out), Path(corpus)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    whisper = WhisperForConditionalGeneration.from_pretrained(str(whisper_dir), attn_implementation="eager").eval()
    eot = whisper.config.eos_token_id
    bd = BlockDecoder(whisper, n_text, n_merger)
    params = trainable(bd)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    step = 0
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        bd.load_state_dict(state["model"], strict=False)
        opt.load_state_dict(state["opt"])
        step = state["step"]
    torch.set_flush_denormal(True)  # tiny softmax tails otherwise slow the backward pass many-fold
    rows = load_corpus(corpus)
    vocab = whisper.config.vocab_size
    base_ids = torch.tensor(sorted({t for r in rows for t in r["tokens"]} | set(range(eot, vocab))))
    rng = random.Random(seed + step)
    held = rows[:held_out]
    held_texts = {r["text"] for r in held}  # past the text source's end, texts repeat: keep them out
    train_rows = [r for r in rows[held_out:] if r["text"] not in held_texts]
    tok = Tokenizer.from_file(str(Path(whisper_dir) / "tokenizer.json"))
    sched = lambda s: min(1.0, (s + 1) / 100) * max(0.1, 1 - s / steps)  # noqa: E731  warmup, linear decay
    log = open(out / "log.jsonl", "a")
    bar = tqdm(total=steps, initial=step, desc="distil", unit="step")
    t0, losses = time.time(), []
    batches = length_batches(train_rows, min(batch, len(train_rows)), random.Random(seed + step + 1))
    # Read the next batches' cached audio K/V (2 MB a clip; more than the page cache holds)
    # while this step computes; several threads, since a read from disk blocks one.
    loader = ThreadPoolExecutor(PREFETCH)
    pending = deque(loader.submit(_batch, next(batches), corpus, eot, n_merger) for _ in range(PREFETCH))
    while step < steps:
        tokens, mask, kv, soft = pending.popleft().result()
        pending.append(loader.submit(_batch, next(batches), corpus, eot, n_merger))
        starts = random_block_starts(tokens.shape[1], max_block, rng)
        hidden = bd(None, tokens, starts, audio_kv=kv, project=False)  # (B, T, C)
        ids, where = vocab_sample(base_ids, soft[0], vocab, n_random_vocab, rng)
        logits = bd.project(hidden[mask], ids)  # (N, V'): label rows and sampled vocabulary only
        loss = distillation_loss(logits, where[tokens[mask]], (where[soft[0]], soft[1]))
        for g in opt.param_groups:
            g["lr"] = lr * sched(step)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        bar.update()
        if step % eval_every == 0 or step == steps:
            ev = evaluate(bd, held, corpus, tok, eot, block=4)
            row = {
                "step": step,
                "loss": float(np.mean(losses[-eval_every:])),
                "elapsed_s": round(time.time() - t0),
                **ev,
            }
            log.write(json.dumps(row) + "\n")
            log.flush()
            tqdm.write(f"step {step}: loss {row['loss']:.3f}, held-out WER vs teacher {ev['wer_vs_teacher']:.1f} %")
            torch.save({"model": bd.state_dict(), "opt": opt.state_dict(), "step": step}, ckpt)
    bar.close()
    loader.shutdown(cancel_futures=True)
    return out


def distil_and_export(
    teacher: str | Path,
    whisper_dir: str | Path,
    work: str | Path,
    out: str | Path,
    split: str = "4+2",
    clips: int = 10000,
    steps: int = 4400,
    batch: int = 16,
    block_size: int = 4,
    quantize: str = "int8",
    vad: Path | None = None,
    save_to: str | Path | None = None,
) -> Path:
    """The whole recipe: corpus (resumable), distillation (resumable), the student's weights
    file (work/train-<split>/student.npz, and `save_to`), and a bundle built from that file."""
    import shutil

    from edge_alm.export.blockdecoder_data import build_corpus
    from edge_alm.export.blockdecoder_weights import save_student
    from edge_alm.runtime.manifest import load_manifest
    from transformers import WhisperForConditionalGeneration

    n_text, n_merger = (int(x) for x in split.split("+"))
    work = Path(work)
    n_layers = load_manifest(teacher).decoder.n_layers  # the Merger takes the last n_merger layers
    build_corpus(teacher, work / "corpus", clips, layers=list(range(n_layers - n_merger, n_layers)))
    run = train(whisper_dir, work / "corpus", work / f"train-{split}", n_text, n_merger, steps=steps, batch=batch)
    whisper = WhisperForConditionalGeneration.from_pretrained(str(whisper_dir), attn_implementation="eager").eval()
    bd = BlockDecoder(whisper, n_text, n_merger)
    bd.load_state_dict(torch.load(run / "checkpoint.pt", weights_only=False)["model"], strict=False)
    student = save_student(bd, whisper, run / "student.npz")
    if save_to:
        Path(save_to).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(student, save_to)
    return export_student(student, whisper_dir, out, block_size=block_size, quantize=quantize, vad=vad)


def export_student(
    student: str | Path,
    whisper_dir: str | Path,
    out: str | Path,
    block_size: int = 4,
    quantize: str = "int8",
    vad: Path | None = None,
) -> Path:
    """A bundle from a trained student's weights file plus the Whisper it was trained on (no training)."""
    from edge_alm.export.blockdecoder_export import build_blockdecoder_bundle
    from edge_alm.export.blockdecoder_weights import load_student
    from transformers import WhisperForConditionalGeneration

    whisper = WhisperForConditionalGeneration.from_pretrained(str(whisper_dir), attn_implementation="eager").eval()
    bd = load_student(whisper, student)
    return build_blockdecoder_bundle(whisper, bd, whisper_dir, out, block_size=block_size, quantize=quantize, vad=vad)
