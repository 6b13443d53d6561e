"""Processes that must not outlive the process that started them, and facts to tell a live process from a
dead one whose pid was reused.

- :func:`die_with_parent`: ``prctl(PR_SET_PDEATHSIG)`` through ``ctypes``: the kernel signals this process
  when its parent exits, however the parent ends (even SIGKILL). Linux only; elsewhere a no-op returning
  ``False``. Call it in the child: at the start of a worker's ``main``, or, prepared by
  :func:`death_signal_setter`, as the ``preexec_fn`` of ``subprocess.Popen`` (between fork and exec; the
  setting survives the exec of a program without set-user-ID bit or file capabilities).
- :func:`process_start_time` / :func:`process_alive`: a pid plus its start time (``/proc/<pid>/stat``)
  names one process, not whichever process later gets the same pid.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable
from pathlib import Path

__all__ = ["death_signal_setter", "die_with_parent", "pid_namespace", "process_alive", "process_start_time"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent exits; returns whether it is set.

    ``parent``: the pid the caller expects as parent (e.g. the launcher's pid captured before ``fork``). If
    the parent has already gone (this process was re-parented before the call), ``sig`` is sent right away,
    as it would have been.
    """
    return death_signal_setter(sig, parent)()


def death_signal_setter(sig: int = signal.SIGTERM, parent: int | None = None) -> Callable[[], bool]:
    """:func:`die_with_parent` prepared in the parent, for ``subprocess.Popen(preexec_fn=...)``: the C
    library is looked up here, so the child between fork and exec only calls ``prctl``."""
    prctl = None
    if Path("/proc/self").exists():  # Linux; elsewhere nothing to do
        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl  # the C library python is linked with
        except (OSError, AttributeError):
            prctl = None

    def set_signal() -> bool:
        if prctl is None or prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
        if parent is not None and os.getppid() != parent:
            os.kill(os.getpid(), sig)
        return True

    return set_signal


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), ``None`` if there
    is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name (field 2) may hold spaces and ')'
    return int(fields[19])


def process_alive(pid: int, start_time: int | None) -> bool:
    """Whether the process ``pid`` that started at ``start_time`` still runs (a reused pid does not count; a
    zombie does not count)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = text.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return False
    return start_time is None or int(fields[19]) == start_time


def pid_namespace() -> str | None:
    """This process's pid namespace (``pid:[inode]``): pids name processes only within one."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
