"""Speed of deltal's `delta_l` advantage estimator against verl's `grpo` / `grpo_vectorized` and a per-sample loop.

The `delta_l` estimator (GRPO group advantage × ΔL weights w_i = L_i^-α / mean_j L_j^-α) runs once per training step
on the driver over the whole batch. This prints the median time of each estimator for batches of outcome
rewards with groups of 10 responses, lengths uniform in 1..width, and the ratios the project targets:
delta_l within 1.1x of grpo_vectorized, and at least 20x faster than a straightforward Python loop at bs=1280.
The loop's output is checked against delta_l's before timing, so both compute the same thing.
`delta_l+telemetry` is one training step's whole cost: the estimator, then the metrics pop that deltal's trainer
runs (weight/length statistics and the variance/bias telemetry of every aggregator); target within 1.15x of
grpo_vectorized. `delta_l_group_excl+telemetry` is the same with group scope and zero-advantage exclusion on.

    .venv/bin/python benchmarks/bench_delta_l_estimator.py                       # bs 1280 and 16384, width 8192
    .venv/bin/python benchmarks/bench_delta_l_estimator.py --device cuda --repeats 20
    .venv/bin/python benchmarks/bench_delta_l_estimator.py --profile             # where delta_l's time goes
    .venv/bin/python benchmarks/bench_delta_l_estimator.py --clock process --threads 1   # on a busy shared machine
"""

import argparse
import functools
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import torch
import verl  # noqa: F401  (loads deltal's plugin, which registers `delta_l`)
from omegaconf import DictConfig, OmegaConf
from verl.trainer.ppo.core_algos import get_adv_estimator_fn

from deltal.verl_adapter.estimator import pop_step_metrics

GRPO_EPSILON = 1e-6  # verl's GRPO: (r - mean) / (std + 1e-6)


def build_inputs(
    batch_size: int, group_size: int, width: int, device: torch.device, seed: int
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Outcome rewards at each response's last token, the response mask, and uids in groups of `group_size`."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (batch_size,), generator=generator)  # (bs,) uniform in 1..width
    response_mask = (torch.arange(width)[None, :] < lengths[:, None]).long()  # (bs, width), int64 like verl's mask
    scores = torch.randint(0, 2, (batch_size,), generator=generator).float()  # (bs,) 0/1 outcome rewards
    token_level_rewards = torch.zeros(batch_size, width)
    token_level_rewards[torch.arange(batch_size), lengths - 1] = scores
    uids = np.array([f"uid-{i // group_size}" for i in range(batch_size)], dtype=object)
    return token_level_rewards.to(device), response_mask.to(device), uids


def estimator_config(
    alpha: float, max_response_length: int, scope: str = "batch", exclude_zero_advantage: bool = False
) -> DictConfig:
    """verl's `algorithm` section as the trainer passes it to a custom estimator (after deltal's resolver)."""
    return OmegaConf.create(
        {
            "norm_adv_by_std_in_grpo": True,
            "filter_overlong_response": {"enable": False},
            "deltal": {
                "method": "delta_l",
                "alpha": alpha,
                "max_response_length": max_response_length,
                "scope": scope,
                "exclude_zero_advantage": exclude_zero_advantage,
            },
        }
    )


def with_metrics_pop(estimator: Callable, **kwargs) -> None:
    """One step as deltal's trainer runs it: the estimator, then the per-step metrics (telemetry included)."""
    estimator(**kwargs)
    if not pop_step_metrics():
        raise RuntimeError("the estimator left no step metrics to pop")


def delta_l_python_loop(
    token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index: np.ndarray, alpha: float
) -> torch.Tensor:
    """The same formula written one sample at a time, as a first implementation would."""
    batch_size = token_level_rewards.shape[0]
    scores, lengths = [], []
    groups: dict[str, list[float]] = defaultdict(list)
    for i in range(batch_size):
        scores.append(token_level_rewards[i].sum().item())
        lengths.append(response_mask[i].sum().item())
        groups[index[i]].append(scores[i])
    group_stats = {}
    for uid, members in groups.items():
        values = torch.tensor(members)
        group_stats[uid] = (values.mean().item(), values.std().item())  # unbiased std, as verl's GRPO
    mean_length = sum(lengths) / batch_size
    inverse_powers = [(length / mean_length) ** -alpha for length in lengths]
    mean_inverse_power = sum(inverse_powers) / batch_size
    advantages = torch.zeros_like(token_level_rewards)
    for i in range(batch_size):
        mean, std = group_stats[index[i]]
        weight = inverse_powers[i] / mean_inverse_power
        advantages[i] = (scores[i] - mean) / (std + GRPO_EPSILON) * weight * response_mask[i]
    return advantages


def interleaved_median_seconds(
    calls: dict[str, Callable[[], object]],
    repeats: dict[str, int],
    device: torch.device,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median time of each call on `clock`, timing them round-robin (rotating the order every round).

    Timing one estimator after another lets background load and allocator state favour whichever runs in a quiet
    moment; interleaving exposes every estimator to the same conditions. Each call is warmed up once first.
    """

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for call in calls.values():
        call()
    synchronize()
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(max(repeats.values())):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            if len(times[name]) >= repeats[name]:
                continue
            start = clock()
            calls[name]()
            synchronize()
            times[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def profile_delta_l(call: Callable[[], object]) -> None:
    """Print the operators that dominate one delta_l call."""
    from torch.profiler import profile

    with profile() as profiler:
        call()
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def benchmark_batch(
    batch_size: int,
    args: argparse.Namespace,
    estimators: dict[str, Callable],
    config: DictConfig,
    device: torch.device,
) -> None:
    """Time every estimator (and the loop) on one batch size and print its rows of the table."""
    rewards, mask, uids = build_inputs(batch_size, args.group_size, args.width, device, args.seed)
    calls = {
        name: functools.partial(fn, token_level_rewards=rewards, response_mask=mask, index=uids, config=config)
        for name, fn in estimators.items()
    }
    inputs = {"token_level_rewards": rewards, "response_mask": mask, "index": uids}
    calls["delta_l+telemetry"] = functools.partial(with_metrics_pop, estimators["delta_l"], config=config, **inputs)
    options = estimator_config(args.alpha, args.width, scope="group", exclude_zero_advantage=True)
    calls["delta_l_group_excl+telemetry"] = functools.partial(
        with_metrics_pop, estimators["delta_l"], config=options, **inputs
    )
    calls["python_loop"] = functools.partial(delta_l_python_loop, rewards, mask, uids, args.alpha)
    expected, _ = calls["delta_l"]()
    torch.testing.assert_close(calls["python_loop"](), expected, rtol=1e-4, atol=1e-5)

    repeats = {name: args.loop_repeats if name == "python_loop" else args.repeats for name in calls}
    clock = time.process_time if args.clock == "process" else time.perf_counter
    seconds = interleaved_median_seconds(calls, repeats, device, clock)
    for name, value in seconds.items():
        print(f"{batch_size:>6} {name:>29} {value * 1e3:>11.2f} {value / seconds['grpo_vectorized']:>18.2f}")
    telemetry = seconds["delta_l+telemetry"] / seconds["grpo_vectorized"]
    print(
        f"{batch_size:>6} ratios: delta_l/grpo_vectorized={seconds['delta_l'] / seconds['grpo_vectorized']:.2f} "
        f"(target <= 1.10)  delta_l+telemetry/grpo_vectorized={telemetry:.2f} (target <= 1.15)  "
        f"python_loop/delta_l={seconds['python_loop'] / seconds['delta_l']:.1f}x "
        f"(target >= 20 at 1280)  grpo/delta_l={seconds['grpo'] / seconds['delta_l']:.1f}x"
    )
    if args.profile:
        profile_delta_l(calls["delta_l"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1280, 16384], help="responses per batch")
    parser.add_argument("--group-size", type=int, default=10, help="responses per uid (rollout.n)")
    parser.add_argument("--width", type=int, default=8192, help="tensor width = max response length M")
    parser.add_argument("--alpha", type=float, default=1.0, help="ΔL exponent")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per estimator (median reported)")
    parser.add_argument("--loop-repeats", type=int, default=5, help="timed calls of the slow Python loop")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--profile", action="store_true", help="also print a torch.profiler table for delta_l")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's choice); 1 keeps small ops from spinning on a busy machine",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "process"),
        default="wall",
        help="wall: elapsed time; process: CPU time of this process (all its threads), far less sensitive to other "
        "processes competing for the cores (CPU only: it does not see GPU time)",
    )
    args = parser.parse_args()

    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = estimator_config(args.alpha, args.width)
    estimators = {name: get_adv_estimator_fn(name) for name in ("delta_l", "grpo_vectorized", "grpo")}
    print(
        f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} width={args.width} "
        f"group_size={args.group_size} alpha={args.alpha} repeats={args.repeats} clock={args.clock}"
    )
    print(f"{'batch':>6} {'estimator':>29} {'median ms':>11} {'x grpo_vectorized':>18}")
    for batch_size in args.batch_sizes:
        benchmark_batch(batch_size, args, estimators, config, device)


if __name__ == "__main__":
    main()
