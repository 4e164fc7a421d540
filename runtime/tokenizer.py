"""Text side of a bundle: token ids to text (a compact byte table) and text to ids (the
`tokenizers` tokenizer, loaded on first use), plus the manifest's special ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from edge_alm.runtime.errors import BundleError
from edge_alm.runtime.manifest import SpecialTokens


def _byte_level_chars() -> dict[str, int]:
    """Byte-level BPE's printable stand-in for each byte (GPT-2's table): bytes that are visible
    Latin-1 characters stand for themselves, the others are shifted to code points from 256."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in visible:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def byte_table(spec: dict) -> tuple[bytes, np.ndarray] | None:
    """(all ordinary tokens' bytes joined, (V + 1,) offsets) from a tokenizer.json whose model is
    BPE and whose decoder is byte-level, else None. Decoding is then a join of byte slices."""
    if spec.get("model", {}).get("type") != "BPE" or (spec.get("decoder") or {}).get("type") != "ByteLevel":
        return None
    chars = _byte_level_chars()
    vocab = spec["model"]["vocab"]
    pieces: list[bytes] = [b""] * (max(vocab.values()) + 1)
    for token, i in vocab.items():
        if any(c not in chars for c in token):
            return None
        pieces[i] = bytes(chars[c] for c in token)
    offsets = np.zeros(len(pieces) + 1, np.int64)
    np.cumsum([len(p) for p in pieces], out=offsets[1:])
    return b"".join(pieces), offsets


class TextTokenizer:
    """Decoding needs only each token's bytes: a transcriber keeps those (under 1 MB) instead of
    the `tokenizers` object with its merges and maps (17 MB resident for Whisper's), which is
    loaded only when text is encoded."""

    def __init__(self, path: Path, special: SpecialTokens) -> None:
        self.path, self.special = path, special
        self._tok = None
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise BundleError(f"{path}: cannot read tokenizer ({e})") from None
        table = byte_table(spec)
        if table is None:  # not byte-level BPE: decode with the full tokenizer
            self._full()
        self._bytes, self._offsets = table if table is not None else (b"", np.zeros(1, np.int64))
        added = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
        # <|startofprev|>: earlier text given as context (no manifest field: its name is Whisper's)
        self.start_of_prev = added.get("<|startofprev|>")

    def _full(self):
        if self._tok is None:
            from tokenizers import Tokenizer

            try:
                self._tok = Tokenizer.from_file(str(self.path))
            except Exception as e:
                raise BundleError(f"{self.path}: cannot read tokenizer ({e})") from None
        return self._tok

    def decode(self, ids: list[int]) -> str:
        """Text of the ordinary tokens in `ids` (special and timestamp tokens dropped)."""
        ids = [i for i in ids if i < self.special.eot]
        n = len(self._offsets) - 1
        if any(i < 0 or i >= n for i in ids):  # no byte table, or an id outside it
            return self._full().decode(ids, skip_special_tokens=True)
        o, b = self._offsets, self._bytes
        return b"".join(b[o[i] : o[i + 1]] for i in ids).decode("utf-8", errors="replace")

    def encode(self, text: str) -> list[int]:
        return self._full().encode(text, add_special_tokens=False).ids

    def prompt(self, language: str | None, task: str, timestamps: bool) -> list[int]:
        """<|startoftranscript|> [<|lang|>] <|task|> [<|notimestamps|>]."""
        s = self.special
        ids = [s.sot]
        if s.languages:
            if language not in s.languages:
                raise ValueError(f"language {language!r} is not one of this model's {len(s.languages)} languages")
            ids.append(s.languages[language])
            ids.append(s.translate if task == "translate" else s.transcribe)
        if not timestamps:
            ids.append(s.no_timestamps)
        return ids
