"""Differential mount tests: kernel overlayfs is the oracle for a FUSE overlay filesystem."""
