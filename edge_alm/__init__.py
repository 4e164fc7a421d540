"""edge-alm: on-device audio-language model runtime (numpy + onnxruntime + tokenizers)."""

from edge_alm.errors import AudioError, BundleError, EdgeALMError
from edge_alm.model import (
    EdgeALM,
    Final,
    Partial,
    Segment,
    Stream,
    StreamOptions,
    TranscribeOptions,
    Transcription,
)

__all__ = [
    "AudioError",
    "BundleError",
    "EdgeALM",
    "EdgeALMError",
    "Final",
    "Partial",
    "Segment",
    "Stream",
    "StreamOptions",
    "TranscribeOptions",
    "Transcription",
]
__version__ = "0.1.0"
