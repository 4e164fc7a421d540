"""Device side: features, graph sessions, KV cache, decoders. Never imports torch."""
