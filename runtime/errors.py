"""The errors edge-alm raises on bad input; each message is one line naming the problem.

They live in the runtime so that dependencies point one way (edge_alm -> runtime);
edge_alm.errors re-exports them."""


class EdgeALMError(Exception):
    """Base class: anything the CLI reports as one line and a non-zero exit."""


class BundleError(EdgeALMError):
    """A model bundle is missing a file, has a corrupt graph, or an unknown manifest version."""


class AudioError(EdgeALMError):
    """Audio could not be read or holds invalid samples (NaN/Inf, wrong shape)."""
