#!/usr/bin/python3
"""Containers end to end as root (no user namespace)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import need_env  # noqa: E402
from e2e_common import scenario  # noqa: E402

need_env()
scenario(None)
