"""Does this text end the speaker's turn? A small text model for the streaming endpointer.

Whisper ends mid-sentence fragments with a full stop too ("My sister said that."), and gives the
full stop of many finished sentences only 0.45-0.6 probability, where fragments sit as well. The
words tell more: a text that stops on "that", "is" or "and", or opens with "If"/"When" and has no
main clause yet, is rarely a whole sentence. This model scores that: logistic regression over
hashed word features (last word, last two words, first word and whether a comma follows it,
length, words since the last comma), trained by `export/end_of_turn_train.py` on whole sentences
against their prefixes cut at random words. Pure Python and numpy; 7 us per text measured.
"""

from __future__ import annotations

import re
import zlib
from importlib import resources
from pathlib import Path

import numpy as np
from edge_alm.runtime.errors import BundleError

FEATURES_VERSION = 1  # bump when features() changes: older weight files are refused
LENGTH_BUCKETS = (1, 2, 3, 4, 6, 9, 14)  # word counts up to each of these share a feature; longer: one more


def words(text: str) -> list[str]:
    """Lower-case words and commas of `text`, without its final full stop, question or exclamation mark."""
    return re.findall(r"[a-z0-9']+|,", re.sub(r"[.!?]+$", "", text.strip().lower()))


def _bucket(n: int) -> int:
    return next((b for b in LENGTH_BUCKETS if n <= b), LENGTH_BUCKETS[-1] + 1)


def features(text: str) -> list[str]:
    """The named features of one text (a bag: each counts once)."""
    tokens = words(text)
    ws = [t for t in tokens if t != ","]
    if not ws:
        return ["empty"]
    since_comma = len(tokens) - 1 - max((i for i, t in enumerate(tokens) if t == ","), default=-1)
    first, last, n = ws[0], ws[-1], _bucket(len(ws))
    out = [
        "bias",
        f"last:{last}",
        "last2:" + " ".join(ws[-2:]),
        f"first:{first}",
        f"first_comma:{first}:{',' in tokens}",
        f"length:{n}",
        f"since_comma:{_bucket(since_comma)}",
        f"last_length:{last}:{n}",
    ]
    if last.isdigit():
        out.append("last_digit")
    return out


def feature_bins(text: str, n_bins: int) -> list[int]:
    """Hashed feature indices (crc32: the same in every process, unlike Python's hash)."""
    return [zlib.crc32(f.encode()) % n_bins for f in features(text)]


DEFAULT_WEIGHTS = "end_of_turn.npz"


class TurnText:
    """P(the turn ends here | the words so far)."""

    def __init__(self, path: Path | None = None) -> None:
        source = path or resources.files("edge_alm") / "data" / DEFAULT_WEIGHTS
        try:
            with source.open("rb") as f:
                data = np.load(f)
                self.weights = data["weights"].astype(np.float64)  # (n_bins,)
                version = int(data["features_version"])
        except (OSError, KeyError, ValueError) as e:
            raise BundleError(f"{source}: not an end-of-turn text model ({e})") from None
        if version != FEATURES_VERSION:
            raise BundleError(f"{source}: features version {version}, this runtime reads {FEATURES_VERSION}")

    def prob(self, text: str) -> float:
        z = self.weights[feature_bins(text, len(self.weights))].sum()
        return float(1 / (1 + np.exp(-z)))
