"""What a stream is told and what it tells: its options (one frozen dataclass, a comment per
field) and its events (Partial, Final) and counters (StreamStats)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from edge_alm.runtime.vad import MIN_SPEECH_S, SPEECH_THRESHOLD


@dataclass(frozen=True)
class StreamOptions:
    vad_threshold: float = SPEECH_THRESHOLD  # chunk speech probability that counts as speech (finals use it too)
    min_silence_s: float = 0.7  # silence that closes an utterance whose text does not end a sentence
    speech_pad_s: float = 0.2  # audio kept before the first and after the last speech chunk
    min_speech_s: float = MIN_SPEECH_S  # utterances with less speech than this are dropped (clicks)
    partial_interval_s: float = 0.5  # re-decode the open utterance this often (0 = no partials)
    first_partial_s: float = 1.0  # no partial before this much audio (Whisper guesses on tiny clips)
    max_utterance_s: float = 25.0  # cut longer utterances at their quietest chunk
    early_end: bool = True  # end the turn before min_silence_s when the speculative final ends a sentence surely:
    early_silence_s: float = 0.032  # the final is decoded after this much silence (and again at speech_pad_s) ...
    end_confidence: float = 0.6  # ... and its end score is at least this: (1 - text_weight) * the decoder's
    #   probability of the full stop (? !) that ends its text + text_weight * the end-of-turn text model's
    #   probability of the words ...
    text_weight: float = 0.0  # ... (0: the decoder alone; 0.5 with end_confidence 0.55-0.6 split more turns than
    #   the rule below on two fresh benchmark recordings, see README) ...
    unsure_end_confidence: float = 0.45  # ... or the decoder gave at least this and the end-of-turn text model
    text_end_confidence: float | None = 0.8  # gives the words at least this (None: no second chance) ...
    turn_lm_confidence: float = 0.3  # ... or, with a turn LM given to the stream (runtime/turn_lm.py), it gives the
    #   words (full stop written or not) at least this probability of a full stop next ...
    sure_silence_s: float = 0.1  # ... the turn ends once this much silence confirms it, with that decode as final
    unsure_silence_s: float | None = None  # a less sure full stop ends the turn after this much silence (None:
    #   min_silence_s; 0.4 s split 5 turns of 16 in benchmarks/streaming.py)
    partial_min_window_s: float = 4.0  # encoder window floor for partials (finals keep the transcriber's)
    partial_cpu_share: float | None = 0.15  # partial decodes take at most this share of real time: after one
    #   that took d seconds the next waits d / share seconds of audio when that is longer than
    #   partial_interval_s (None: every partial_interval_s, however long they take). 0.15 took the stream's
    #   CPU real-time factor from 0.43-0.48 to 0.35-0.37 with the same finals (README)

    def __post_init__(self) -> None:
        for name in ("min_silence_s", "max_utterance_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in (
            "speech_pad_s",
            "min_speech_s",
            "partial_interval_s",
            "first_partial_s",
            "partial_min_window_s",
            "early_silence_s",
            "sure_silence_s",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)!r}")
        if self.unsure_silence_s is not None and not self.unsure_silence_s >= 0:
            raise ValueError(f"unsure_silence_s must be 0 or more, got {self.unsure_silence_s!r}")
        for name in ("end_confidence", "unsure_end_confidence", "text_weight", "turn_lm_confidence"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be from 0 to 1, got {getattr(self, name)!r}")
        if self.text_end_confidence is not None and not 0 <= self.text_end_confidence <= 1:
            raise ValueError(f"text_end_confidence must be from 0 to 1 or None, got {self.text_end_confidence!r}")
        if not 0 < self.vad_threshold < 1:
            raise ValueError(f"vad_threshold must be between 0 and 1, got {self.vad_threshold!r}")
        if self.partial_cpu_share is not None and not 0 < self.partial_cpu_share <= 1:
            raise ValueError(f"partial_cpu_share must be above 0 and at most 1, got {self.partial_cpu_share!r}")
        if 0 < self.partial_interval_s < 0.1:
            raise ValueError("partial_interval_s below 0.1 s re-decodes on every chunk; use 0 for no partials")


@dataclass
class Partial:
    text: str  # current hypothesis of the open utterance
    stable: str  # prefix that two consecutive partials agreed on (does not flicker)
    start: float  # seconds from the start of the stream


@dataclass
class Final:
    text: str
    start: float  # seconds from the start of the stream
    end: float
    end_of_speech_to_final_ms: float  # wall time from the arrival of the last speech audio to this event
    turn_closed_to_final_ms: float = 0.0  # wall time from the decision that the turn ended (compute only)
    audio: np.ndarray | None = field(default=None, repr=False)  # the utterance, 16 kHz (for `listen --ask`)


@dataclass
class StreamStats:
    received_samples: int = 0  # at the input rate, summed over calls
    processed_s: float = 0.0  # seconds of 16 kHz audio through the VAD
    dropped_samples: int = 0  # input samples dropped (bad chunks, source overflow)
    dropped_chunks: int = 0
    problems: list[str] = field(default_factory=list)  # one line per kind of drop, first few only
