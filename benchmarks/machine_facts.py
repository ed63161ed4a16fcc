"""The machine facts a CPU benchmark figure depends on, and a short calibration, so figures from two boxes compare.

The same quickstart step measured 2.8 s on one 2-vCPU box, 4.6 s on another and 7.3 s on a third
(docs/cpu-step-profile.md, "Why the step figure differs between boxes"). What differs is in these facts: the CPU
and its vector units, whether the two vCPUs are two cores or two hyperthreads of one, cgroup limits, what Ray and
torch think the CPU count is, and how fast the Python build runs pure Python (most of a step's CPU time is Python in
Ray, TransferQueue and verl). The calibration measures, in fresh processes, what a step is made of:

* ``python``: a pure-Python loop (dicts, ints, strings), alone and in two processes at once;
* ``matmul``: a 512 × 512 fp32 GEMM, one thread, two threads, and two one-thread processes at once;
* ``model``: the quickstart model's shape (Qwen2, hidden 128, 2 layers) on a micro-batch of 128 × 56 tokens:
  forward without grad (``old_log_prob``) and forward + backward (``update_actor``), one and two threads.

Two one-thread processes at once run about twice as fast as one on two real cores, about 1.1-1.3 times on two
hyperthreads of one core, and slower still next to another busy process.

    python benchmarks/machine_facts.py            # facts and calibration
    python benchmarks/machine_facts.py --no-calibration
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import re
import statistics
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

from deltal.config.cores import cgroup_cpu_limit, cores_of

# CPU flags worth naming: the vector units torch's kernels pick from.
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
PYTHON_LOOP_N = 200_000
GEMM_SIZE = 512
# The quickstart's model and one micro-batch of it (train_scripts/quickstart-cpu.sh, deltal/cpu/assets.py).
MODEL_SHAPE = {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 256}  # fmt: skip
MICRO_BATCH = (128, 56)


def cpuinfo(text: str) -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo``."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def python_build() -> str:
    """Implementation, version, compiler and the build options that change pure-Python speed."""
    config = sysconfig.get_config_var("CONFIG_ARGS") or ""
    options = [
        "PGO" if "--enable-optimizations" in config else "no PGO",
        "LTO" if "--with-lto" in config else "no LTO",
    ]
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        options.append("shared libpython")
    return (
        f"{platform.python_implementation()} {platform.python_version()} ({platform.python_compiler()}; "
        f"{', '.join(options)}; as configured, a distribution may differ)"
    )


def ray_cpu_count() -> str:
    try:
        from ray._private.utils import get_num_cpus
    except ImportError:
        return "ray not installed"
    return f"{get_num_cpus():g}"


def torch_facts() -> str:
    import torch

    config = torch.__config__.show()
    blas = re.search(r"(Math Kernel Library Version [\d.]+|OpenBLAS[^\n,]*)", config)
    return (
        f"torch {torch.__version__}, kernels {torch.backends.cpu.get_cpu_capability()}, "
        f"{torch.get_num_threads()} intra-op threads by default, "
        f"{'OpenMP' if torch.backends.openmp.is_available() else 'no OpenMP'}, BLAS {blas.group(1) if blas else '?'}"
    )


def machine_facts() -> dict[str, str]:
    """Human-readable facts about this machine, one line each."""
    try:
        info = cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        info = {}
    flags = set(info.get("flags", "").split())
    usable = os.sched_getaffinity(0)
    cores = cores_of(usable)
    limit = cgroup_cpu_limit()
    with open("/proc/meminfo") as handle:
        mem_kib = int(handle.readline().split()[1])
    threads_env = {name: os.environ[name] for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")
                   if name in os.environ}  # fmt: skip
    return {
        "cpu": (
            f"{info.get('model name', platform.processor() or '?')} (vendor {info.get('vendor_id', '?')}, "
            f"family {info.get('cpu family', '?')} model {info.get('model', '?')}, {info.get('cpu MHz', '?')} MHz"
            f"{', virtual machine' if 'hypervisor' in flags else ''})"
        ),
        "vector units": ", ".join(flag for flag in VECTOR_FLAGS if flag in flags) or "/".join(VECTOR_FLAGS) + ": none",
        "cpus": (
            f"os.cpu_count {os.cpu_count()}, usable (affinity) {len(usable)}, physical cores among them "
            f"{cores if cores is not None else '?'}, cgroup quota {f'{limit:g} CPUs' if limit else 'none'}, "
            f"Ray sees {ray_cpu_count()}"
        ),
        "python": python_build(),
        "torch": torch_facts(),
        "thread env": ", ".join(f"{k}={v}" for k, v in threads_env.items()) or "no OMP/MKL thread variables set",
        "memory": f"{mem_kib / 2**20:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
    }


def _best_seconds(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def _python_loop() -> int:
    table: dict[int, int] = {}
    total = 0
    for i in range(PYTHON_LOOP_N):
        table[i % 97] = table.get(i % 97, 0) + i
        total += len(str(i))
    return total


def _gemm_gflops(threads: int, repeats: int = 20) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(GEMM_SIZE, GEMM_SIZE), torch.randn(GEMM_SIZE, GEMM_SIZE)
    torch.mm(a, b)
    seconds = _best_seconds(lambda: [torch.mm(a, b) for _ in range(10)], repeats) / 10
    return 2 * GEMM_SIZE**3 / seconds / 1e9


def _model_seconds(threads: int) -> tuple[float, float]:
    """(forward without grad, forward + backward) seconds of the quickstart model on one micro-batch."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = Qwen2ForCausalLM(Qwen2Config(**MODEL_SHAPE, tie_word_embeddings=True, attn_implementation="sdpa"))
    ids = torch.randint(0, MODEL_SHAPE["vocab_size"], MICRO_BATCH)

    def forward() -> None:
        with torch.no_grad():
            model(input_ids=ids, use_cache=False)

    def train() -> None:
        model.zero_grad()
        model(input_ids=ids, use_cache=False).logits.float().logsumexp(-1).mean().backward()

    forward(), train()
    return _best_seconds(forward, 3), _best_seconds(train, 3)


def _solo(queue: multiprocessing.Queue) -> None:
    """One fresh process: every single-process figure."""
    one_fwd, one_train = _model_seconds(1)
    two_fwd, two_train = _model_seconds(2)
    queue.put(
        {
            "python": _best_seconds(_python_loop, 5),
            "gemm1": _gemm_gflops(1),
            "gemm2": _gemm_gflops(2),
            "fwd1": one_fwd,
            "fwd2": two_fwd,
            "train1": one_train,
            "train2": two_train,
        }
    )


def _pair_member(kind: str, barrier, queue: multiprocessing.Queue) -> None:
    """One of two processes started together: the same one-thread work at the same moment."""
    if kind == "gemm":
        import torch

        torch.set_num_threads(1)
        _gemm_gflops(1, repeats=2)  # warm up before the barrier
    barrier.wait()
    queue.put(_gemm_gflops(1) if kind == "gemm" else _best_seconds(_python_loop, 5))


def _in_fresh_processes(target: Callable, argsets: list[tuple]) -> list:
    context = multiprocessing.get_context("spawn")  # a fork would inherit this process's thread pools
    queue = context.Queue()
    processes = [context.Process(target=target, args=(*args, queue)) for args in argsets]
    for process in processes:
        process.start()
    results = [queue.get(timeout=300) for _ in processes]
    for process in processes:
        process.join()
    return results


def calibrate() -> dict[str, str]:
    """Throughput figures of this machine for the work a CPU step is made of (about 20 s)."""
    (solo,) = _in_fresh_processes(_solo, [()])
    context = multiprocessing.get_context("spawn")
    pair: dict[str, list] = {}
    for kind in ("python", "gemm"):
        barrier = context.Barrier(2)
        pair[kind] = _in_fresh_processes(_pair_member, [(kind, barrier), (kind, barrier)])
    python_pair = statistics.mean(pair["python"])
    return {
        "python loop": (
            f"{solo['python'] * 1e3:.1f} ms alone, {python_pair * 1e3:.1f} ms each of two at once "
            f"(two processes do {2 * solo['python'] / python_pair:.2f}x the work of one)"
        ),
        "matmul 512² fp32": (
            f"{solo['gemm1']:.0f} GFLOPS 1 thread, {solo['gemm2']:.0f} 2 threads, "
            f"{sum(pair['gemm']):.0f} two 1-thread processes at once"
        ),
        "model 128×56 forward": f"{solo['fwd1'] * 1e3:.0f} ms 1 thread, {solo['fwd2'] * 1e3:.0f} ms 2 threads",
        "model 128×56 fwd+bwd": f"{solo['train1'] * 1e3:.0f} ms 1 thread, {solo['train2'] * 1e3:.0f} ms 2 threads",
    }


def print_facts(calibration: bool = True, file=None) -> dict[str, str]:
    """Print the facts (and the calibration) as ``name: value`` lines to ``file`` (standard output as it is at the
    call, not at import); return them."""
    file = file if file is not None else sys.stdout
    lines = machine_facts()
    with open("/proc/loadavg") as handle:
        lines["load average"] = " ".join(handle.read().split()[:3])
    if calibration:
        lines.update(calibrate())
    width = max(len(name) for name in lines)
    for name, value in lines.items():
        print(f"{name:<{width}}  {value}", file=file, flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-calibration", action="store_true", help="print the facts only (no 20 s calibration)")
    args = parser.parse_args()
    print_facts(calibration=not args.no_calibration)


if __name__ == "__main__":
    main()
