"""The transcriber's text decoding (a byte table read from tokenizer.json) gives exactly what the
`tokenizers` library gives, including tokens that are pieces of one UTF-8 character, and text is
still encoded by `tokenizers` (loaded on first use)."""

from __future__ import annotations

import numpy as np
from edge_alm.runtime.manifest import load_manifest
from edge_alm.runtime.tokenizer import TextTokenizer
from tokenizers import Tokenizer


def test_decode_equals_the_tokenizers_library(tiny_bundle):
    m = load_manifest(tiny_bundle)
    path = m.path / m.tokenizer
    ours, full = TextTokenizer(path, m.tokens), Tokenizer.from_file(str(path))
    assert ours._tok is None  # decoding alone never loads the full tokenizer
    rng = np.random.default_rng(0)
    eot = m.tokens.eot
    for _ in range(2000):  # random ids: many are lone bytes of multi-byte characters
        ids = [int(i) for i in rng.integers(0, eot, rng.integers(1, 25))]
        assert ours.decode(ids) == full.decode(ids, skip_special_tokens=True), ids
    for text in [" Hello, world!", " Grüße aus Köln — 10 €.", " 日本語のテキスト", " emoji 🎉 and ñ"]:
        ids = ours.encode(text)
        assert ours.decode([m.tokens.sot, *ids, eot, eot + 5]) == text  # special ids dropped
    assert ours._tok is not None
    assert ours.start_of_prev == full.token_to_id("<|startofprev|>")
