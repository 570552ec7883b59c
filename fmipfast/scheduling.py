"""A daemon's CPU scheduling, set at start from its ``scheduling`` table (``[router.scheduling]``,
``[mn.scheduling]``; docs/operations.md, "Scheduling and the first handover"): what systemd's
``CPUSchedulingPolicy=``, ``CPUSchedulingPriority=`` and ``Nice=`` set for a unit, for a daemon started
without it.

Ownership: the calling thread, at start, before the daemon starts any thread (threads inherit the policy).

May import: config, errors (tests/test_imports.py holds the rules).
"""

from __future__ import annotations

import os

from fmipfast.config import SchedulingConfig
from fmipfast.errors import FmipError

__all__ = ["SchedulingError", "apply_scheduling", "POLICIES"]

#: A ``scheduling`` table's ``policy`` -> the Linux policy (sched(7)).
POLICIES = {"other": os.SCHED_OTHER, "batch": os.SCHED_BATCH, "fifo": os.SCHED_FIFO, "rr": os.SCHED_RR}


class SchedulingError(FmipError):
    """The kernel refused a ``scheduling`` table's policy or nice value; the text names the key."""


def apply_scheduling(sched: SchedulingConfig, key: str) -> None:
    """Set the calling thread's CPU scheduling as the table ``key`` (``"router.scheduling"``,
    ``"mn.scheduling"``) says -- nothing for the defaults; what the kernel refuses (a realtime policy without
    CAP_SYS_NICE or an RLIMIT_RTPRIO that allows it, a nice value below the current one without CAP_SYS_NICE)
    is a :class:`SchedulingError` naming the key."""
    if sched.policy != "inherit":
        try:
            os.sched_setscheduler(0, POLICIES[sched.policy], os.sched_param(sched.priority))
        except OSError as exc:
            raise SchedulingError(f"{key}.policy: cannot set {sched.policy} (priority {sched.priority}): "
                                  f"{exc.strerror or exc}; a realtime policy needs CAP_SYS_NICE (under systemd set "
                                  "CPUSchedulingPolicy= and CPUSchedulingPriority= in the unit instead)") from None
    if sched.nice is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, sched.nice)
        except OSError as exc:
            raise SchedulingError(f"{key}.nice: cannot set {sched.nice}: {exc.strerror or exc} (a lower value than "
                                  "the current one needs CAP_SYS_NICE; under systemd set Nice=)") from None
