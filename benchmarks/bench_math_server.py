"""Throughput and latency of the math server's /verify endpoint, against a reference-style design.

    .venv/bin/python benchmarks/bench_math_server.py [--pairs 1000] [--workers 2]

Three runs on the same realistic mix (integers, fractions vs decimals, roots, pi, intervals, tuples, polynomials,
``x = n`` answers, long chain-of-thought ending in ``\\boxed{}``, garbage; about half correct):

1. deltal's server (``server/math/start.sh``): ``/verify`` requests of ``--request-pairs`` pairs, 4 in flight (what
   the reward client's micro-batcher sends);
2. the same with 1% of the predictions replaced by adversarial inputs (power towers, huge factorials, deep nesting);
3. a reference-style server written below: one HTTP request per pair, a ``ProcessPoolExecutor`` and
   ``asyncio.wait_for``, 32 requests in flight (clean mix only: its pool cannot stop a runaway check).

Both servers use the same check (``server/math/equivalence.py``) and ``--workers`` processes, so the difference is
the serving design. Targets: run 1 >= 1.5x run 3; run 2 >= 60% of run 1. Each line also gives the server's CPU time
per check (its whole process group), which a shared machine's load barely moves: compare designs by it when
checks/s swing with other people's jobs. Prints checks/s and request latency.
"""

import argparse
import asyncio
import contextlib
import ctypes
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SERVER_DIR = REPO / "server" / "math"  # --server-dir points both servers at another checkout's server/math

ADVERSARIAL = [
    "$9^{9^{9^{9}}}$",
    "$(10^{10})!$",
    "\\binom{10^9}{10^8}",
    "$(x+y+z+w)^{200}$",
    "$" + "\\sin(" * 300 + "x" + ")" * 300 + "$",
    "$" + "+".join(["x"] * 5000) + "$",
]


def realistic_mix(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """(prediction, ground truth) pairs, about half of them correct."""
    rng = random.Random(seed)
    pairs = []
    for index in range(count):
        a, b = rng.randint(1, 99), rng.randint(2, 99)
        correct = index % 2 == 0
        kind = index % 10
        if kind == 0:
            gold, pred = str(a), str(a if correct else a + 1)
        elif kind == 1:
            gold, pred = f"\\frac{{{a}}}{{{b}}}", f"{a / b:.6f}" if correct else f"{a / b + 0.5:.6f}"
        elif kind == 2:
            gold, pred = f"{a}\\sqrt{{2}}", f"\\sqrt{{{2 * a * a}}}" if correct else f"\\sqrt{{{2 * a * a + 1}}}"
        elif kind == 3:
            gold, pred = f"{a}\\pi", f"\\pi \\cdot {a}" if correct else f"{a + 1}\\pi"
        elif kind == 4:
            gold, pred = f"[{a}, {a + b})", f"[{a},{a + b})" if correct else f"({a},{a + b}]"
        elif kind == 5:
            gold, pred = f"({a}, {b})", f"({a},{b})" if correct else f"({b},{a + 100})"
        elif kind == 6:
            gold, pred = f"x^2+{2 * a}x+{a * a}", f"(x+{a})^2" if correct else f"(x-{a})^2"
        elif kind == 7:
            gold, pred = str(a), f"x = {a}" if correct else f"x = {a + 2}"
        elif kind == 8:
            cot = " ".join(rng.choice(["so", "then", "we", "get", "thus", "x", "=", str(a)]) for _ in range(250))
            gold, pred = f"\\frac{{{a}}}{{{b}}}", f"{cot} \\boxed{{\\dfrac{{{a}}}{{{b}}}}}" if correct else cot
        else:
            gold, pred = str(a), rng.choice(["I don't know", "", "\\frac{", "}}{{", "NaN apples"])
        pairs.append((pred, gold))
    return pairs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_started: list[subprocess.Popen] = []  # every server this run started, stopped on any exit (also Ctrl-C, SIGTERM)


def start(command: list[str], env: dict[str, str], url: str) -> subprocess.Popen:
    """Start a server in its own process group (it and everything it forks) and wait until /health says 200."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    _started.append(process)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server {command[:3]} exited with {process.returncode} before it became healthy")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError(f"server at {url} did not become healthy")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left of it, even once the leader has exited:
    pool workers can outlive their server and ignore SIGTERM (a worker forked from a uvicorn process inherits its
    SIGTERM handler, which only asks a server loop the worker does not run to stop)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    if process in _started:
        _started.remove(process)


def stop_all() -> None:
    while _started:
        stop(_started[-1])


async def drive(url: str, requests: list[tuple[str, dict]], in_flight: int) -> tuple[float, list[float]]:
    """Send ``(path, json)`` requests with ``in_flight`` concurrency; returns wall time and per-request latencies."""
    latencies: list[float] = []
    queue = list(reversed(requests))
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=in_flight)) as http:

        async def sender():
            while queue:
                path, body = queue.pop()
                started = time.perf_counter()
                response = await http.post(path, json=body)
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*[sender() for _ in range(in_flight)])
    return time.perf_counter() - started, latencies


def group_cpu_s(group: int) -> float:
    """CPU seconds used so far by the processes of a process group, including children they have reaped (so a
    killed and replaced worker still counts). Unlike wall time, it hardly moves with other load on a shared machine."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # fields: state, ppid, pgrp, ..., utime stime cutime cstime at 11..14
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def timed_drive(server: subprocess.Popen, url: str, requests: list[tuple[str, dict]], in_flight: int):
    """drive(), plus the server group's CPU seconds over it: (wall_s, latencies, cpu_s)."""
    cpu_before = group_cpu_s(server.pid)
    wall_s, latencies = asyncio.run(drive(url, requests, in_flight))
    return wall_s, latencies, group_cpu_s(server.pid) - cpu_before


def report(name: str, checks: int, wall_s: float, latencies: list[float], cpu_s: float) -> float:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    rate = checks / wall_s
    print(
        f"{name:<34} {rate:8.1f} checks/s  wall {wall_s:6.2f}s  server CPU {cpu_s * 1e3 / checks:6.2f} ms/check  "
        f"requests {len(latencies):5d}  latency p50 {statistics.median(ordered) * 1e3:8.1f} ms  p99 {p99 * 1e3:8.1f} ms"
    )
    return rate


def verify_requests(pairs, request_pairs: int) -> list[tuple[str, dict]]:
    return [
        ("/verify", {"pairs": [{"prediction": p, "ground_truth": g} for p, g in pairs[start : start + request_pairs]]})
        for start in range(0, len(pairs), request_pairs)
    ]


def _reference_worker_init() -> None:
    # Forked from the uvicorn process: take back the default SIGTERM/SIGINT (uvicorn's handlers would make the worker
    # ignore them), and die with the server (Linux prctl PR_SET_PDEATHSIG = 1) instead of outliving it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)


def serve_reference(port: int, workers: int, timeout_s: float, server_dir: Path) -> None:
    """The reference-style server: one pair per request, ProcessPoolExecutor, asyncio.wait_for."""
    import concurrent.futures

    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel

    sys.path.insert(0, str(server_dir))
    from equivalence import check_pair

    pool = concurrent.futures.ProcessPoolExecutor(workers, initializer=_reference_worker_init)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(lifespan=lifespan)

    class Pair(BaseModel):
        str1: str
        str2: str

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/is_equal")
    async def is_equal(pair: Pair):
        loop = asyncio.get_running_loop()
        try:
            status = await asyncio.wait_for(
                loop.run_in_executor(pool, check_pair, pair.str2, pair.str1, 2, 4000), timeout_s
            )
        except asyncio.TimeoutError:
            status = "timeout"
        return {"equal": status == "equal", "status": status}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1000, help="pairs per run")
    parser.add_argument("--workers", type=int, default=2, help="checker processes of each server")
    parser.add_argument("--request-pairs", type=int, default=64, help="pairs per /verify request")
    parser.add_argument(
        "--server-dir",
        type=Path,
        default=SERVER_DIR,
        help="server/math folder to benchmark (default: this checkout's); give an older checkout's to compare "
        "before/after on the same machine, back to back",
    )
    parser.add_argument("--serve-reference", type=int, default=None, help=argparse.SUPPRESS)  # internal: port
    args = parser.parse_args()
    if args.serve_reference is not None:
        serve_reference(args.serve_reference, args.workers, timeout_s=5.0, server_dir=args.server_dir)
        return

    clean = realistic_mix(args.pairs)
    rng = random.Random(1)
    adversarial = list(clean)
    for index in rng.sample(range(len(adversarial)), max(1, len(adversarial) // 100)):
        adversarial[index] = (rng.choice(ADVERSARIAL), adversarial[index][1])
    print(f"{args.pairs} pairs per run, {args.workers} workers, {os.cpu_count()} CPUs, server {args.server_dir}")

    # Ctrl-C raises KeyboardInterrupt; make SIGTERM do the same, so the servers are stopped on either.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        ours, ours_adv, theirs = run_all(args, clean, adversarial)
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
    finally:
        stop_all()
    print(f"speed-up on the clean mix: {ours / theirs:.2f}x (target >= 1.5x)")
    print(f"1% adversarial keeps {ours_adv / ours:.0%} of clean throughput (target >= 60%)")


def run_all(args: argparse.Namespace, clean, adversarial) -> tuple[float, float, float]:
    """The three runs (see the module docstring); each server is stopped before the next starts."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "MATH_SERVER_PORT": str(port),
        "MATH_SERVER_WORKERS": str(args.workers),
    }
    env.update({"MATH_SERVER_LOG_LEVEL": "warning", "MATH_SERVER_TIMEOUT": "3", "MATH_SERVER_INNER_TIMEOUT": "1"})
    server = start(["bash", str(args.server_dir / "start.sh")], env, url)
    asyncio.run(drive(url, verify_requests(clean[:100], args.request_pairs), 4))  # warm connections and caches
    ours = report(
        "deltal /verify, clean", len(clean), *timed_drive(server, url, verify_requests(clean, args.request_pairs), 4)
    )
    ours_adv = report(
        "deltal /verify, 1% adversarial",
        len(adversarial),
        *timed_drive(server, url, verify_requests(adversarial, args.request_pairs), 4),
    )
    stop(server)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    reference = start(
        [sys.executable, __file__, "--serve-reference", str(port), "--workers", str(args.workers)]
        + ["--server-dir", str(args.server_dir)],
        dict(os.environ),
        url,
    )
    single = [("/is_equal", {"str1": p, "str2": g}) for p, g in clean]
    asyncio.run(drive(url, single[:100], 32))
    theirs = report("reference, one pair per request", len(clean), *timed_drive(reference, url, single, 32))
    stop(reference)
    return ours, ours_adv, theirs


if __name__ == "__main__":
    main()
