"""Runtime errors live in edge_alm.errors; the runtime re-exports them for its own modules."""

from edge_alm.errors import AudioError, BundleError, EdgeALMError

__all__ = ["AudioError", "BundleError", "EdgeALMError"]
