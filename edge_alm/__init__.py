"""edge-alm: on-device audio-language model runtime (numpy + onnxruntime + tokenizers).

Names load on first use, so importing one runtime module (`edge_alm.runtime.kv_cache`)
does not pull in the API layer, soundfile and soxr.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "AudioError": "edge_alm.errors",
    "BundleError": "edge_alm.errors",
    "EdgeALMError": "edge_alm.errors",
    "Answer": "edge_alm.model",
    "AskOptions": "edge_alm.model",
    "Chat": "edge_alm.model",
    "EdgeALM": "edge_alm.model",
    "Final": "edge_alm.model",
    "Partial": "edge_alm.model",
    "Segment": "edge_alm.model",
    "Stream": "edge_alm.model",
    "StreamOptions": "edge_alm.model",
    "TranscribeOptions": "edge_alm.model",
    "Transcription": "edge_alm.model",
}
__all__ = sorted(_WHERE)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'edge_alm' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
