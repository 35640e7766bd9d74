"""Each module registers its cases with @case; importing this package registers them all."""
from . import copyup, fileops, idmap, links, lookup, namespace, perms, readdir, xattr  # noqa: F401
