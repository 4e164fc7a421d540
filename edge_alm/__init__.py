"""edge-alm: on-device audio-language model runtime."""
