#!/usr/bin/python3
"""Containers end to end as an unprivileged user: strata runs as strata-test (runuser), its
store in a dir it owns, strata-fs through fusermount3 on the host and inside a user
namespace for `run`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import TEST_USER, need_env  # noqa: E402
from e2e_common import scenario  # noqa: E402

need_env(rootless=True)
scenario(TEST_USER)
