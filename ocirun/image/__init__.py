"""Containers from OCI images: `ocirun bundle` (layout reading, layer store, unpacking, config conversion)."""
