"""Does this text end the speaker's turn? Asked of a causal LM: the probability that the user's
message goes on with a full stop, question or exclamation mark right after these words.

A whole sentence ("I need to return these books to the library") is one a chat LM expects to
see closed; a fragment ("The thing that worries me is", "If the weather stays like this") is
not. On the streaming benchmark's texts SmolLM2-135M-Instruct separates the two almost
perfectly (ROC AUC 0.997-1.0 on each of four recordings, where the hashed-feature text model of
runtime/turn_text.py scores 0.87-0.98: it cannot know that "please" or "a little" ends a
request). Any alm bundle serves: its LM and tokenizer are used without audio, at 1 thread so
that the stream's own decoding keeps the other core. The user turn's opening is read from the
bundle's prompt template, never assumed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from edge_alm.runtime.alm import AlmModel, AlmState
from edge_alm.runtime.errors import BundleError
from edge_alm.runtime.manifest import load_manifest
from edge_alm.runtime.sampling import log_softmax
from edge_alm.runtime.session import SessionConfig

ENDINGS = (".", "?", "!")
TRAILING = re.compile(r"[\s.,;:!?…-]+$")  # the decoder's own closing marks are dropped before asking


def user_turn_prefix(continue_template: str) -> str:
    """The text that opens a user turn, from a template that closes the previous answer and opens
    the next turn around "{question}" (ChatML: "<|im_end|>\\n<|im_start|>user\\n{question}..."
    -> "<|im_start|>user\\n")."""
    head = continue_template.split("{question}")[0]
    lines = head.split("\n")
    if "{question}" not in continue_template or not head.endswith("\n") or len(lines) < 2 or not lines[-2].strip():
        raise BundleError(f"cannot find where a user turn opens in the prompt template {continue_template!r}")
    return lines[-2] + "\n"


class TurnLM:
    """P(the turn ends here | the words so far), from an alm bundle's LM."""

    def __init__(self, bundle: str | Path, threads: int = 1) -> None:
        manifest = load_manifest(bundle)
        if manifest.kind != "alm":
            raise BundleError(f"{manifest.path}: a turn LM needs an alm bundle, this one is {manifest.kind}")
        self.model = AlmModel(manifest, SessionConfig(threads=threads))
        prefix = user_turn_prefix(manifest.config.prompt.continue_template)
        ends = [self.model.encode(e) for e in ENDINGS]
        if any(len(e) != 1 for e in ends):
            raise BundleError(f"{manifest.path}: its tokenizer does not write {ENDINGS} as single tokens")
        self.end_ids = np.array([e[0] for e in ends])
        # the turn opening is the same for every text: prefill it once, rewind to it per question
        self.state = AlmState(self.model)
        self.state.feed(self.model.embed(np.array([self.model.encode(prefix)])))
        self.prefix_len = self.state.length

    def prob(self, text: str) -> float:
        words = TRAILING.sub("", text.strip())
        if not words:
            return 0.0
        self.state.cache.rewind_to(self.prefix_len)
        logits = self.state.feed(self.model.embed(np.array([self.model.encode(words)])))  # (1, V)
        return float(np.exp(log_softmax(logits[0])[self.end_ids]).sum())
