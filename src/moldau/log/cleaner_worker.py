"""The log cleaner's worker processes: how they start and what they know of the broker.

Cleaning is CPU work (decompress, filter, recompress) that would starve the broker's event
loop, so :class:`~moldau.log.cleaner_manager.LogCleanerManager` runs it in a
``ProcessPoolExecutor`` with the *spawn* context: a fresh interpreter that shares nothing
with the broker (no inherited descriptors, locks or threads) and gets everything it needs
in the pickled :class:`~moldau.log.cleaner.CleanJob`.

A worker must not outlive the broker — after a ``kill -9`` of the broker an orphaned worker
would keep writing into a staging directory the next broker is about to delete. On Linux
:func:`init_worker` asks the kernel (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to kill the
worker when its parent dies, and then checks the parent is still the one that started it
(it may have died before the ``prctl``). Elsewhere the executor's own shutdown is all there
is. SIGINT is ignored: a Ctrl-C on the broker's terminal reaches the whole process group,
and it is the broker that decides how its workers stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
"""``prctl`` option from ``<linux/prctl.h>``."""


def init_worker(parent_pid: int) -> None:
    """Process pool initializer: die with the parent (see the module docstring)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)  # the broker died before the prctl took effect
    signal.signal(signal.SIGINT, signal.SIG_IGN)
