"""How many physical CPU cores this process may use: its CPU affinity, hyperthread siblings and cgroup CPU quota.

Two vCPUs are two cores on some machines and two hyperthreads of one core on others, and a container may be
allowed fewer CPUs than it sees. ``physical_cores()`` counts what torch's intra-op threads can really run on in
parallel; ``benchmarks/machine_facts.py`` prints it with every benchmark figure.
Standard library only: the config package sits below everything else (docs/layers.md).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

SYS_CPU = Path("/sys/devices/system/cpu")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cores_of(cpus: set[int], sys_cpu: Path = SYS_CPU) -> int | None:
    """Physical cores among ``cpus``: CPUs that list each other as hyperthread siblings count once (None if the
    topology is not readable)."""
    groups = set()
    for cpu in cpus:
        try:
            groups.add((sys_cpu / f"cpu{cpu}" / "topology" / "thread_siblings_list").read_text().strip())
        except OSError:
            return None
    return len(groups)


def cgroup_cpu_limit(proc_cgroup: str | None = None, cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """CPUs this process's cgroup quota allows (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``); None if unlimited."""
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return None
    for line in proc_cgroup.splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        path = path.lstrip("/")
        try:
            if hierarchy == "0" and controllers == "":  # v2: "max 100000" or "200000 100000"
                quota, period = (cgroup_root / path / "cpu.max").read_text().split()
            elif "cpu" in controllers.split(","):  # v1: quota -1 means unlimited
                folder = cgroup_root / "cpu" / path
                quota = (folder / "cpu.cfs_quota_us").read_text().strip()
                period = (folder / "cpu.cfs_period_us").read_text().strip()
            else:
                continue
        except (OSError, ValueError):
            continue
        if quota not in ("max", "-1"):
            return int(quota) / int(period)
    return None


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on, no more than its cgroup quota allows, at least 1."""
    usable = os.sched_getaffinity(0)
    cores = cores_of(usable) or len(usable)
    limit = cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, math.floor(limit))
    return max(1, cores)
