"""No orphans: the processes an engine spawns die with the process that owns it, even on kill -9.

vLLM runs its engine core (and, with several workers, its workers) in child processes that
outlive a parent killed with SIGKILL: nothing runs in the parent to stop them, and they keep
their memory (about 4.8 GB for the embedded judge) and their CPU, so a restarted server holds
two engines. ``python -m cerm_reward.engines.orphans PID`` is a tiny watchdog the owner starts
beside its engine: it notes the owner's descendants every half second and, as soon as the owner
is gone, terminates the ones it noted (SIGKILL after a grace period), then ends itself. A
watchdog instead of ``PR_SET_PDEATHSIG`` inside the children, because vLLM starts them through
multiprocessing (spawn), which offers no hook to set it, and a grandchild's parent is not the owner.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

POLL_S = 0.5
GRACE_S = 3.0


def start_watchdog(owner_pid: int | None = None) -> subprocess.Popen[bytes]:
    """Start the watchdog over ``owner_pid`` (default: this process); terminate it when done with the engine."""
    owner = owner_pid or os.getpid()
    return subprocess.Popen(
        [sys.executable, "-m", "cerm_reward.engines.orphans", str(owner)],
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C to the owner's group is the owner's business, not the watchdog's
    )


def watch(owner_pid: int) -> None:
    """Note ``owner_pid``'s descendants until it is gone, then end them."""
    import psutil

    me = os.getpid()
    try:
        owner = psutil.Process(owner_pid)
    except psutil.NoSuchProcess:
        return
    noted: dict[int, psutil.Process] = {}
    while True:
        try:
            if owner.status() == psutil.STATUS_ZOMBIE:
                break
            for child in owner.children(recursive=True):
                if child.pid != me:
                    noted.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            break
        time.sleep(POLL_S)
    alive = [p for p in noted.values() if p.is_running()]
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, still = psutil.wait_procs(alive, timeout=GRACE_S)
    for process in still:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


if __name__ == "__main__":
    watch(int(sys.argv[1]))
