"""The image: built on the local base, run read-only as non-root with the host network."""
