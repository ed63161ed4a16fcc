"""Per-phase cost of one verl training step on CPU, as the quickstart runs it (32 prompts × 8 responses).

Runs ``train_scripts/quickstart-cpu.sh`` (same model, data, warm start and config; assets cached under ``.deltal/``)
for a few steps with validation off, and prints, per variant, the median over the measured steps of:

* ``wall``: seconds between two consecutive step records appearing in verl's metrics file (everything a user
  waits for, logging included);
* verl's own ``timing_s/*`` metrics (``gen`` = rollout including the replay-buffer wait, ``old_log_prob``,
  ``adv``, ``update_actor``, ``update_weights``, ...), the same figures the trainer logs every step;
* ``start``: seconds from launch to the first step record (Ray, workers, servers, TransferQueue);
* CPU seconds per step of each process of the run (Ray workers by their actor name), over the measured steps:
  on a 2-core box every process's CPU time comes out of the same two cores, whichever phase it serves;
* CPU seconds of each process from launch to the first step record (``start cpu``): what every launch pays
  before it trains (sampled every second, so a process that lives for less than a second may be missed).

The target of the CPU backend is a median ``wall`` of at most 3 s on 2 cores (docs/cpu-step-profile.md).
Variants run round-robin in alternating order (A B, B A, ...), so that load from other processes hits them alike;
each variant is a label and hydra overrides appended to the quickstart's command line:

    .venv/bin/python benchmarks/bench_cpu_step.py                                     # the quickstart as is
    .venv/bin/python benchmarks/bench_cpu_step.py --steps 8 --rounds 2 \\
        --variant "now:" --variant "poll2s:trainer.v1.sampler.custom_sampler.path=null"

Load from other processes changes every figure: the script prints ``uptime`` before and after. On a fresh
checkout the first run also builds the assets and the warm start (about 2 minutes): run the script once before
comparing start-up times.

Figures from two machines compare only with their machine facts: the script first prints the CPU, its cores and
hyperthreads, cgroup limits, the CPU counts Ray and torch see, the Python build and a 20 s calibration
(``benchmarks/machine_facts.py``), and with each run the niceness, CPU affinity and thread settings its FSDP worker
ran with.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil
from machine_facts import print_facts

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "train_scripts" / "quickstart-cpu.sh"
TIMING_PREFIX = "timing_s/"
# Overrides that turn validation off, so the measured steps are training steps only.
NO_VALIDATION = ["trainer.val_before_train=false", "trainer.test_freq=-1"]
# Seconds between two CPU readings of every process before the first step (each reading costs a few ms per process).
STARTUP_READING_INTERVAL_S = 1.0


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``"label:override override"`` → (label, overrides); exits 2 on a missing label."""
    label, sep, rest = text.partition(":")
    if not sep or not label.strip():
        print(f"bench_cpu_step: --variant {text!r} needs the form 'label:override override ...'", file=sys.stderr)
        sys.exit(2)
    return label.strip(), shlex.split(rest)


def cpu_seconds_by_process(root_pid: int) -> dict[int, tuple[str, float]]:
    """pid → (name, user + system CPU seconds so far) for ``root_pid``'s descendants (Ray sets actor names)."""
    snapshot: dict[int, tuple[str, float]] = {}
    try:
        children = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return snapshot
    for child in children:
        try:
            cmdline = child.cmdline()
            times = child.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        snapshot[child.pid] = (_process_label(cmdline) or child.name(), times.user + times.system)
    return snapshot


def _process_label(cmdline: list[str]) -> str:
    """Ray workers by their actor title (``ray::Name``), other processes by their module or script name."""
    if not cmdline:
        return ""
    if cmdline[0].startswith("ray::"):
        return cmdline[0].split(" ")[0].split(".")[0]  # the title shows the running method after a dot
    if "-m" in cmdline[:-1]:
        return cmdline[cmdline.index("-m") + 1]
    scripts = [Path(arg).name for arg in cmdline[1:] if arg.endswith(".py")]
    return scripts[0] if scripts else Path(cmdline[0]).name


def cpu_by_name(snapshot: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds summed over the processes of each name."""
    totals: dict[str, float] = defaultdict(float)
    for name, seconds in snapshot.values():
        totals[name] += seconds
    return dict(totals)


def cpu_per_step(first: dict[int, tuple[str, float]], last: dict[int, tuple[str, float]], steps: int) -> dict:
    """CPU seconds per step by process name, between two snapshots ``steps`` steps apart."""
    totals: dict[str, float] = defaultdict(float)
    for pid, (name, seconds) in last.items():
        if pid in first:
            totals[name] += (seconds - first[pid][1]) / steps
    return dict(totals)


def worker_settings(root_pid: int, label: str = "ray::WorkerDict") -> str:
    """Niceness, CPU affinity and thread variables the FSDP worker (the process of the FSDP phases) runs with."""
    try:
        children = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return "gone"
    for child in children:
        try:
            if _process_label(child.cmdline()) != label:
                continue
            env = child.environ()  # the environment the process started with; Ray sets OMP_NUM_THREADS later
            threads = {name: env[name] for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "DELTAL_CPU_THREADS")
                       if name in env}  # fmt: skip
            return f"nice {child.nice()}, CPUs {sorted(child.cpu_affinity())}, " + (
                ", ".join(f"{k}={v}" for k, v in threads.items()) or "no thread variables (Ray's 1 per actor)"
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return "not found"


def run_once(overrides: list[str], steps: int, skip: int, timeout_s: float) -> dict:
    """Run the quickstart for ``steps`` steps; return start-up time, per-step wall times, metrics and CPU use."""
    with tempfile.TemporaryDirectory(prefix="bench-cpu-step-") as tmp:
        run_dir = Path(tmp) / "run"
        metrics_path = run_dir / "metrics.jsonl"
        env = {**os.environ, "STEPS": str(steps), "RUN_DIR": str(run_dir)}
        log_path = Path(tmp) / "train.log"
        started = time.monotonic()
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                ["bash", str(QUICKSTART), "delta_l", *NO_VALIDATION, *overrides],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
            arrivals: dict[int, float] = {}
            settings = "not seen"
            records: dict[int, dict] = defaultdict(dict)
            offset = 0
            cpu_first: dict = {}
            cpu_last: dict = {}
            cpu_steps = 0
            # Last CPU reading of every process seen before the first step, also of those that ended before it.
            startup_cpu: dict[int, tuple[str, float]] = {}
            next_startup_reading = 0.0
            while True:
                finished = process.poll() is not None
                if not arrivals and time.monotonic() >= next_startup_reading:
                    startup_cpu.update(cpu_seconds_by_process(process.pid))
                    next_startup_reading = time.monotonic() + STARTUP_READING_INTERVAL_S
                if metrics_path.exists():
                    with open(metrics_path) as handle:
                        handle.seek(offset)
                        chunk = handle.read()
                    complete = chunk[: chunk.rfind("\n") + 1]
                    offset += len(complete.encode())
                    now = time.monotonic() - started
                    for line in complete.splitlines():
                        record = json.loads(line)
                        if not arrivals:
                            startup_cpu.update(cpu_seconds_by_process(process.pid))
                            settings = worker_settings(process.pid)
                        arrivals.setdefault(record["step"], now)
                        records[record["step"]].update(record["data"])
                    trained = sorted(step for step, data in records.items() if f"{TIMING_PREFIX}step" in data)
                    # CPU use is counted from the end of the skipped steps to the last step seen.
                    if len(trained) == skip + 1 and not cpu_first:
                        cpu_first, first_count = cpu_seconds_by_process(process.pid), len(trained)
                    elif cpu_first and len(trained) - first_count > cpu_steps:
                        cpu_last, cpu_steps = cpu_seconds_by_process(process.pid), len(trained) - first_count
                if finished:
                    break
                if time.monotonic() - started > timeout_s:
                    process.kill()
                    raise TimeoutError(f"quickstart ran past {timeout_s:.0f} s; log: {log_path.read_text()[-3000:]}")
                time.sleep(0.05)
        if process.returncode != 0:
            raise RuntimeError(f"quickstart failed (exit {process.returncode}):\n{log_path.read_text()[-5000:]}")
    step_ids = sorted(step for step, data in records.items() if f"{TIMING_PREFIX}step" in data)
    if not step_ids:
        raise RuntimeError("no training step was logged")
    walls = {step: arrivals[step] - arrivals[prev] for prev, step in zip(step_ids, step_ids[1:], strict=False)}
    return {
        "start": arrivals[step_ids[0]],
        "total": time.monotonic() - started,
        "walls": walls,
        "records": {step: records[step] for step in step_ids},
        "cpu": cpu_per_step(cpu_first, cpu_last, cpu_steps) if cpu_steps else {},
        "startup_cpu": cpu_by_name(startup_cpu),
        "worker": settings,
    }


def summarise(runs: list[dict], skip: int) -> dict[str, float]:
    """Medians over every run's steps after the first ``skip`` ones (the first steps warm caches up)."""
    series: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        series["start"].append(run["start"])
        series["total"].append(run["total"])
        steps = sorted(run["records"])[skip:]
        for step in steps:
            if step in run["walls"]:
                series["wall"].append(run["walls"][step])
            for key, value in run["records"][step].items():
                if key.startswith(TIMING_PREFIX):
                    series[key[len(TIMING_PREFIX) :]].append(float(value))
    for run in runs:
        for name, seconds in run["cpu"].items():
            series[f"cpu {name}"].append(seconds)
        for name, seconds in run["startup_cpu"].items():
            series[f"start cpu {name}"].append(seconds)
        series["start cpu (all)"].append(sum(run["startup_cpu"].values()))
    return {key: statistics.median(values) for key, values in series.items()}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="training steps per run")
    parser.add_argument("--skip", type=int, default=2, help="first steps of each run left out of the medians")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each variant (round-robin)")
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        help="'label:hydra overrides' appended to the quickstart; repeatable (default: one variant, no overrides)",
    )
    parser.add_argument("--timeout-s", type=float, default=900, help="limit per run")
    parser.add_argument("--json", type=Path, default=None, help="also write the machine facts and medians here")
    parser.add_argument("--no-calibration", action="store_true", help="machine facts without the 20 s calibration")
    args = parser.parse_args()
    if args.steps <= args.skip + 1:
        print(f"bench_cpu_step: --steps ({args.steps}) must exceed --skip + 1 ({args.skip + 1})", file=sys.stderr)
        sys.exit(2)
    variants = [parse_variant(text) for text in (args.variant or ["quickstart:"])]

    machine = print_facts(calibration=not args.no_calibration)
    print(f"load before: {uptime()}", flush=True)
    runs: dict[str, list[dict]] = defaultdict(list)
    for round_index in range(args.rounds):
        # A B, then B A, ...: a run that follows another (its Ray shutdown, a load change) is not always the same one.
        for label, overrides in variants if round_index % 2 == 0 else variants[::-1]:
            run = run_once(overrides, args.steps, args.skip, args.timeout_s)
            runs[label].append(run)
            walls = " ".join(f"{run['walls'][s]:.2f}" for s in sorted(run["walls"]))
            print(f"round {round_index + 1} {label}: start {run['start']:.1f} s, step walls [{walls}]", flush=True)
            print(f"  FSDP worker: {run['worker']}", flush=True)
    print(f"load after: {uptime()}")

    summaries = {label: summarise(runs[label], args.skip) for label, _ in variants}
    every = {key for summary in summaries.values() for key in summary}

    def by_cost(prefix: str) -> list[str]:
        return sorted(
            (key for key in every if key.startswith(prefix)),
            key=lambda k: -max(summary.get(k, 0.0) for summary in summaries.values()),
        )

    cpu_keys, startup_keys = by_cost("cpu "), by_cost("start cpu ")
    phase_keys = sorted(every - set(cpu_keys) - set(startup_keys) - {"wall", "step", "start", "total"})
    sections = [
        ("", ["wall", "step", *phase_keys, "start", "total"]),
        ("CPU seconds per step, by process:", cpu_keys),
        ("CPU seconds from launch to the first step, by process:", startup_keys),
    ]
    width = max(max(len(label) for label in summaries) + 2, 10)
    print(f"\nmedian seconds (steps {args.skip + 1}..{args.steps}, {args.rounds} run(s) per variant)")
    print(f"{'phase':<34}" + "".join(f"{label:>{width}}" for label in summaries))
    for heading, section in sections:
        if heading and section:
            print(heading)
        for key in section:
            cells = "".join(
                f"{summaries[label][key]:>{width}.3f}" if key in summaries[label] else f"{'-':>{width}}"
                for label in summaries
            )
            print(f"{key[:34]:<34}{cells}")
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine, "medians": summaries}, indent=2))


if __name__ == "__main__":
    main()
