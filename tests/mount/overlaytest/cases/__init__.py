"""Each module registers its cases with @case; importing this package registers them all."""
from . import (acl_over_whiteout, copyup, engine, fileops, idmap, lifecycle, links, lookup, mountflags, namespace,  # noqa: F401
               passthrough, perms, randomops, readdir, stress, xattr)
