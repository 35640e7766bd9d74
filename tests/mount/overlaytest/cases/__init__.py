"""Each module registers its cases with @case; importing this package registers them all."""
from . import lookup, readdir  # noqa: F401
