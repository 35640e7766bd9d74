"""Each module registers its cases with @case; importing this package registers them all."""
from . import copyup, fileops, links, lookup, namespace, readdir, xattr  # noqa: F401
