"""Workstation side: turn model checkpoints into edge-alm bundles (needs the `export` extra)."""
