"""Each module registers its cases with @case; importing this package registers them all."""
from . import (copyup, engine, fileops, idmap, lifecycle, links, lookup, namespace, perms,  # noqa: F401
               randomops, readdir, stress, xattr)
