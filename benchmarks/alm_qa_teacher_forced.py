"""Exact answers under teacher forcing (fp32, PyTorch) for some tasks of the held-out set, read from a
training checkpoint: a quick look at a run in progress without exporting a bundle.

    python -m benchmarks.alm_qa_teacher_forced --work .cache/alm-qa-v8 [--clip-facts " (level {level_db} dBFS)"]
        [--tasks loudness louder]

An answer counts when every one of its tokens is the LM's likeliest given the right ones before it.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from edge_alm.export.alm_export import load_lm
    from edge_alm.export.alm_graphs import PooledMLPAdapter
    from edge_alm.export.alm_qa_train import LORA_TARGETS, Corpus, add_lora
    from edge_alm.runtime.frame_stats import N_STATS

    from edge_alm import EdgeALM

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True, help="a training work folder (checkpoint.pt, heldout/, base-bundle/)")
    ap.add_argument("--clip-facts", default="", help="the prompt's clip facts the run was trained with")
    ap.add_argument("--tasks", nargs="+", default=["loudness", "louder"])
    ap.add_argument("--lm", default=str(ROOT / ".cache/smollm2-135m-instruct-hf"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    work = Path(args.work)
    alm = EdgeALM.load(work / "base-bundle", threads=1).alm
    alm.config = replace(alm.config, prompt=replace(alm.config.prompt, clip_facts=args.clip_facts))
    held = Corpus(work / "heldout", alm, alm.config.prompt.stop_tokens[0])
    state = torch.load(work / "checkpoint.pt", weights_only=False)
    lm = load_lm(Path(args.lm))
    loras = add_lora(lm, state["lora"][0][0].shape[0], 16.0, tuple(state.get("lora_targets", LORA_TARGETS)))
    for m, (a, b) in zip(loras, state["lora"]):
        m.A.data, m.B.data = a, b
    adapter = PooledMLPAdapter(alm.config.audio.encoder_dim, alm.config.lm.hidden_size, alm.config.audio.pool, N_STATS)
    adapter.load_state_dict(state["adapter"])
    emb = lm.get_input_embeddings()

    @torch.no_grad()
    def exact(i: int) -> bool:
        parts, answer = held.example(i)
        chunks = [adapter(p[0][None], p[1][None])[0] if isinstance(p, tuple) else emb(torch.tensor(p)) for p in parts]
        x = torch.cat([*chunks, emb(torch.tensor(answer))])  # (L, D)
        hidden = lm.model(inputs_embeds=x[None]).last_hidden_state[0]
        start = x.shape[0] - len(answer)
        return lm.lm_head(hidden[start - 1 : start - 1 + len(answer)]).argmax(-1).tolist() == answer

    print(f"{work}: step {state['step']}")
    for task in args.tasks:
        rows = [i for i, qa in enumerate(held.qas) if qa["task"] == task]
        hits = sum(exact(i) for i in rows)
        print(f"{task}: {hits} / {len(rows)} exact ({100 * hits / max(len(rows), 1):.0f} %)")


if __name__ == "__main__":
    main()
