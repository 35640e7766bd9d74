"""Starting a strata-fs daemon in the foreground for the small per-feature mount tests."""
import os
import subprocess
import time


def start_strata_fs(binary, options, mnt, preexec_fn=None):
    """Runs `binary -f -o options mnt` (stderr piped) and waits until mnt is a mount point.
    Returns (daemon, None), or (None, why) when the daemon exited or never mounted."""
    daemon = subprocess.Popen([binary, "-f", "-o", options, mnt], stderr=subprocess.PIPE, text=True,
                              preexec_fn=preexec_fn)
    for _ in range(200):  # a guard against a daemon that never mounts, not a time limit
        if os.path.ismount(mnt):
            return daemon, None
        if daemon.poll() is not None:
            return None, f"strata-fs exited: {daemon.stderr.read().strip()}"
        time.sleep(0.05)
    daemon.kill()
    daemon.wait()
    return None, "strata-fs did not mount"
