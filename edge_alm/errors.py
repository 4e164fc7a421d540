"""The errors edge-alm raises (defined in edge_alm.runtime.errors)."""

from edge_alm.runtime.errors import AudioError, BundleError, EdgeALMError

__all__ = ["AudioError", "BundleError", "EdgeALMError"]
