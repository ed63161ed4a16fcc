"""The CountDown solver is exact and complete: is_solvable agrees with an independent brute force, and every
expression solve() returns uses each number once, equals the target and carries no redundant parentheses."""

import itertools
import random
from fractions import Fraction

import pytest

from deltal.data.solver import is_solvable, reachable_values, solve
from deltal.rewards.countdown import compute_score_strict, evaluate_expression


def _brute_force_values(numbers):
    # Independent reference: combine any two remaining values in every order, recursively.
    values = [Fraction(n) for n in numbers]
    if len(values) == 1:
        return {values[0]}
    found = set()
    for i, j in itertools.permutations(range(len(values)), 2):
        rest = [v for k, v in enumerate(values) if k not in (i, j)]
        a, b = values[i], values[j]
        results = [a + b, a - b, a * b] + ([a / b] if b != 0 else [])
        for result in results:
            found |= _brute_force_values(rest + [result])
    return found


def test_reachable_values_match_an_independent_brute_force():
    rng = random.Random(7)
    for _ in range(40):
        numbers = [rng.randint(0, 12) for _ in range(rng.choice([1, 2, 3, 4]))]
        assert reachable_values(numbers) == _brute_force_values(numbers), numbers


def test_is_solvable_agrees_with_the_reachable_set_including_zero_and_negative_targets():
    rng = random.Random(11)
    for _ in range(60):
        numbers = [rng.randint(0, 15) for _ in range(rng.choice([2, 3, 4]))]
        reachable = reachable_values(numbers)
        for target in range(-30, 200):
            assert is_solvable(numbers, target) == (target in reachable), (numbers, target)


def test_solve_finds_the_fractional_solution_of_the_spike_example():
    solutions = solve([7, 1, 5], 35)
    assert "5/(1/7)" in solutions and "5*7*1" in solutions
    assert solve([1, 5, 5, 5], 24) == ["(5-1/5)*5", "5*(5-1/5)"]


@pytest.mark.parametrize(
    ("numbers", "target"), [([7, 1, 5], 35), ([3, 8, 1, 1], 24), ([44, 19, 35], 98), ([2, 3, 4], 14)]
)
def test_every_solution_uses_each_number_once_and_hits_the_target(numbers, target):
    solutions = solve(numbers, target)
    assert solutions
    for expression in solutions:
        value, literals = evaluate_expression(expression)
        assert value == target and sorted(literals) == sorted(numbers), expression
        ground_truth = {"target": target, "numbers": numbers}
        assert compute_score_strict("countdown_easy", f"<answer>{expression}</answer>", ground_truth)["score"] == 1.0


def test_solutions_use_minimal_parentheses():
    assert "2+3*4" in solve([2, 3, 4], 14) and "2+(3*4)" not in solve([2, 3, 4], 14)
    assert "(2+3)*4" in solve([2, 3, 4], 20)
    assert "4-(3-2)" in solve([2, 3, 4], 3) and "4-3+2" in solve([2, 3, 4], 3)
    assert "8/(4/2)" in solve([8, 4, 2], 4) and "8/4*2" in solve([8, 4, 2], 4)
    assert all(text.count("(") <= 1 for text in solve([2, 3, 4], 9))  # 9 = 2+3+4 in any order, never bracketed
    assert not any(text.startswith("(") and text.endswith(")") and "(" not in text[1:-1] for text in solve([2, 3], 5))


def test_unreachable_target_has_no_solution():
    assert solve([1, 1, 1], 100) == []
    assert not is_solvable([1, 1, 1], 100)


@pytest.mark.parametrize("numbers", [[], [1, -2], [1.5, 2], [True, 2], list(range(7))])
def test_invalid_numbers_raise_a_clear_error(numbers):
    with pytest.raises(ValueError, match="numbers"):
        solve(numbers, 3)
