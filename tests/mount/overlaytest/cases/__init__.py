"""Each module registers its cases with @case; importing this package registers them all."""
from . import copyup, lookup, namespace, readdir  # noqa: F401
