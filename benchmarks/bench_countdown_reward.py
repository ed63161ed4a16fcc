"""Benchmark: deltal's CountDown reward against the usual regex + ``eval`` reward (TinyZero style).

    .venv/bin/python benchmarks/bench_countdown_reward.py [--completions 4000] [--repeats 3] [--hang-timeout 2]

Prints (1) reward evaluations per second for both on a realistic mix of completions (correct, wrong value,
wrong numbers, malformed, long think text), the time ratio (target: ours <= 1.5x the baseline's time); (2) the
inputs the baseline wrongly accepts or hangs on, with what ours says; dangerous inputs run for the baseline in a
subprocess that is killed after ``--hang-timeout`` seconds; (3) ours' worst latency on adversarial inputs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import re
import time

from deltal.data.countdown import draw_standard
from deltal.data.solver import solve
from deltal.rewards.countdown import compute_score

_BASELINE_ANSWER = re.compile(r"<answer>(.*?)</answer>")
_BASELINE_ALLOWED = re.compile(r"^[\d+\-*/().\s]+$")


def baseline_score(solution_str: str, ground_truth: dict, format_score: float = 0.0) -> float:
    """The common TinyZero-style reward: last <answer> by regex, a character regex, \\d+ numbers, then eval."""
    matches = _BASELINE_ANSWER.findall(solution_str)
    if not matches:
        return 0.0
    equation = matches[-1].strip()
    if sorted(int(n) for n in re.findall(r"\d+", equation)) != sorted(ground_truth["numbers"]):
        return format_score
    if not _BASELINE_ALLOWED.match(equation):
        return format_score
    try:
        result = eval(equation, {"__builtins__": None}, {})  # noqa: S307 - this is the unsafe baseline
        return 1.0 if abs(float(result) - float(ground_truth["target"])) < 1e-5 else format_score
    except Exception:  # the baseline swallows every error, as the usual implementations do
        return format_score


def _think(rng: random.Random, chars: int) -> str:
    words = ["let", "me", "try", "44", "+", "19", "=", "63", "no", "that", "is", "too", "small", "so", "multiply"]
    text = []
    while sum(len(w) + 1 for w in text) < chars:
        text.append(rng.choice(words))
    return "<think>" + " ".join(text) + "</think>\n"


def realistic_mix(count: int, seed: int = 0) -> list[tuple[str, dict]]:
    """Completions in the proportions an RL batch sees: mostly wrong or malformed, some right, some very long."""
    rng = random.Random(seed)
    mix = []
    while len(mix) < count:
        numbers, target = draw_standard(rng)
        gt = {"target": target, "numbers": list(numbers)}
        right = solve(numbers, target)[0] if len(numbers) == 3 else None
        kind = rng.random()
        think = _think(rng, rng.choice([300, 1500, 6000]))
        shown = " + ".join(map(str, numbers))
        if kind < 0.25 and right:
            answer = f"<answer> {right} </answer>"  # correct
        elif kind < 0.55:
            answer = f"<answer> {shown} </answer>"  # right numbers, (usually) wrong value
        elif kind < 0.7:
            answer = f"<answer> {numbers[0]} * 2 </answer>"  # wrong numbers
        elif kind < 0.8:
            answer = f"<answer> {shown} = {target} </answer>"  # equation with '=': malformed
        elif kind < 0.9:
            answer = "I could not find it."  # no answer tags
        else:
            answer = f"<answer>{shown}"  # truncated
        mix.append((think + answer, gt))
    return mix


# (description, completion, ground truth): inputs where the baseline's verdict is wrong or its cost unbounded.
GT_24 = {"target": 24, "numbers": [3, 8, 1, 1]}
GT_9S = {"target": 24, "numbers": [9, 9, 9, 9]}
SAFE_DISAGREEMENTS = [
    ("power operator", "<answer>(3*8)**1**1</answer>", GT_24),
    ("unary minus", "<answer>--3*8*1*1</answer>", GT_24),
    ("float literal", "<answer>3*8.*1*1</answer>", GT_24),
    ("trailing '1.' float", "<answer>3*8*1*1.</answer>", GT_24),
]
DANGEROUS = [
    ("power tower 9**9**9**9", "<answer>9**9**9**9</answer>", GT_9S),
    ("50**25**7**3 with ordinary numbers", "<answer>50**25**7**3</answer>", {"target": 1, "numbers": [3, 7, 25, 50]}),
    ("1 MB sum 1+1+...+1", "<answer>" + "1+" * 500_000 + "1</answer>", {"target": 500_001, "numbers": [1] * 500_001}),
]
ADVERSARIAL_FOR_OURS = {
    "9**9**9**9": "<answer>9**9**9**9</answer>",
    "10k nested parentheses": "<answer>" + "(" * 10_000 + "1" + ")" * 10_000 + "</answer>",
    "1 MB answer": "<answer>" + "1+" * 500_000 + "1</answer>",
    "1 MB of <answer>": "<answer>" * 125_000,
    "NUL bytes": "<answer>" + "\x00" * 100_000 + "</answer>",
    "unicode digits": "<answer>" + "\u0663" * 200 + "</answer>",
}


def _baseline_in_child(completion: str, ground_truth: dict, queue) -> None:
    queue.put(baseline_score(completion, ground_truth))


def run_baseline_with_timeout(completion: str, ground_truth: dict, timeout: float) -> tuple[str, float]:
    """Run the baseline in a child process; returns (verdict, seconds), the verdict 'hung' when it was killed."""
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(
        target=_baseline_in_child, args=(completion, ground_truth, queue)
    )
    start = time.perf_counter()
    child.start()
    child.join(timeout)
    elapsed = time.perf_counter() - start
    if child.is_alive():
        child.kill()
        child.join()
        return f"hung (killed after {timeout:.0f} s)", elapsed
    return f"score {queue.get():.1f}", elapsed


def _throughput(score, mix, repeats: int) -> tuple[float, list[float]]:
    best = float("inf")
    scores = []
    for _ in range(repeats):
        start = time.perf_counter()
        scores = [score(text, gt) for text, gt in mix]
        best = min(best, time.perf_counter() - start)
    return best, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--completions", type=int, default=4000, help="size of the realistic mix")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats; the best is reported")
    parser.add_argument("--hang-timeout", type=float, default=2.0, help="seconds before a baseline child is killed")
    args = parser.parse_args()

    mix = realistic_mix(args.completions)
    ours_time, ours = _throughput(lambda t, gt: compute_score("countdown", t, gt)["score"], mix, args.repeats)
    base_time, base = _throughput(baseline_score, mix, args.repeats)
    mean_chars = sum(len(t) for t, _ in mix) / len(mix)
    print(f"realistic mix: {len(mix)} completions, mean {mean_chars:.0f} chars, {sum(ours) / len(ours):.2f} correct")
    print(f"  ours     : {len(mix) / ours_time:10.0f} evals/s  ({ours_time / len(mix) * 1e6:.1f} us each)")
    print(f"  baseline : {len(mix) / base_time:10.0f} evals/s  ({base_time / len(mix) * 1e6:.1f} us each)")
    ratio = ours_time / base_time
    print(f"  time ratio ours/baseline = {ratio:.2f} (target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})")
    print(f"  verdicts that differ on the mix: {sum(a != b for a, b in zip(ours, base, strict=True))}")

    print("\ninputs the baseline gets wrong:")
    for name, completion, gt in SAFE_DISAGREEMENTS:
        print(
            f"  {name:38s} baseline score {baseline_score(completion, gt):.1f} | ours {_ours_verdict(completion, gt)}"
        )
    for name, completion, gt in DANGEROUS:
        verdict, elapsed = run_baseline_with_timeout(completion, gt, args.hang_timeout)
        print(f"  {name:38s} baseline {verdict} in {elapsed:.2f} s | ours {_ours_verdict(completion, gt)}")

    print("\nours on adversarial inputs, 21 calls each (median / worst; the worst includes scheduler noise):")
    for name, completion in ADVERSARIAL_FOR_OURS.items():
        times = []
        for _ in range(21):
            start = time.perf_counter()
            compute_score("countdown", completion, GT_24)
            times.append(time.perf_counter() - start)
        times.sort()
        print(f"  {name:38s} {times[10] * 1e3:7.3f} ms / {times[-1] * 1e3:7.3f} ms")


def _ours_verdict(completion: str, gt: dict) -> str:
    start = time.perf_counter()
    result = compute_score("countdown", completion, gt)
    return f"score {result['score']:.1f} ({result['reason']}) in {(time.perf_counter() - start) * 1e3:.3f} ms"


if __name__ == "__main__":
    main()
