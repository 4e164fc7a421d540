"""Text side of a bundle: the `tokenizers` tokenizer plus the manifest's special ids."""

from __future__ import annotations

from pathlib import Path

from edge_alm.runtime.errors import BundleError
from edge_alm.runtime.manifest import SpecialTokens
from tokenizers import Tokenizer


class TextTokenizer:
    def __init__(self, path: Path, special: SpecialTokens) -> None:
        try:
            self.tok = Tokenizer.from_file(str(path))
        except Exception as e:
            raise BundleError(f"{path}: cannot read tokenizer ({e})") from None
        self.special = special
        # <|startofprev|>: earlier text given as context (no manifest field: its name is Whisper's)
        self.start_of_prev = self.tok.token_to_id("<|startofprev|>")

    def decode(self, ids: list[int]) -> str:
        """Text of the ordinary tokens in `ids` (special and timestamp tokens dropped)."""
        return self.tok.decode([i for i in ids if i < self.special.eot], skip_special_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

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
