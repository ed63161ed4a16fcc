"""Exact CountDown solver: which targets a multiset of numbers can reach, and every expression that reaches one.

Rules: each number used exactly once, binary ``+ - * /`` with any bracketing, exact rational intermediates
(``5/(1/7)`` = 35 is allowed; intermediates may be negative or fractional, matching the reward in
``deltal.rewards.countdown``). Values are kept as ``int`` while exact division allows it and as
``fractions.Fraction`` otherwise, which is ~10x faster than all-Fraction arithmetic with identical results.

- :func:`reachable_values`: every value the numbers reach, by dynamic programming over sub-multisets
  (used by the dataset builder to prove instances solvable).
- :func:`solve`: every expression string (minimal parentheses, no spaces) equal to the target
  (used as SFT targets by the CPU quickstart).

Library module; ``python -m deltal.data.countdown`` uses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from functools import lru_cache
from itertools import combinations

Number = int | Fraction

# Operator precedence for printing; a leaf binds tightest.
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_LEAF = 3


def _exact_div(a: Number, b: Number) -> Number:
    if isinstance(a, int) and isinstance(b, int):
        return a // b if a % b == 0 else Fraction(a, b)
    quotient = Fraction(a) / b
    return quotient.numerator if quotient.denominator == 1 else quotient


def _combine(a: Number, b: Number) -> Iterable[Number]:
    # Every value of a op b and b op a.
    yield a + b
    yield a - b
    yield b - a
    yield a * b
    if b != 0:
        yield _exact_div(a, b)
    if a != 0:
        yield _exact_div(b, a)


def _splits(items: tuple[int, ...]) -> Iterable[tuple[tuple[int, ...], tuple[int, ...]]]:
    # Unordered splits of a sorted tuple into two non-empty sorted sub-tuples (by position, so duplicates repeat).
    size = len(items)
    seen = set()
    for k in range(1, size // 2 + 1):
        for chosen in combinations(range(size), k):
            left = tuple(items[i] for i in chosen)
            right = tuple(items[i] for i in range(size) if i not in chosen)
            key = (left, right) if left <= right else (right, left)
            if key not in seen:
                seen.add(key)
                yield key


@lru_cache(maxsize=16384)
def _reachable_sorted(items: tuple[int, ...]) -> frozenset[Number]:
    if len(items) == 1:
        return frozenset(items)
    values: set[Number] = set()
    for left, right in _splits(items):
        right_values = _reachable_sorted(right)
        for a in _reachable_sorted(left):
            for b in right_values:
                values.update(_combine(a, b))
    return frozenset(values)


def _check_numbers(numbers: Sequence[int]) -> tuple[int, ...]:
    if not numbers or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in numbers):
        raise ValueError(f"numbers must be a non-empty list of non-negative ints, got {list(numbers)!r}")
    if len(numbers) > 6:
        raise ValueError(f"the solver is exhaustive and supports at most 6 numbers, got {len(numbers)}")
    return tuple(sorted(numbers))


def reachable_values(numbers: Sequence[int]) -> frozenset[Number]:
    """Every exact value reachable by using each of ``numbers`` exactly once."""
    return _reachable_sorted(_check_numbers(numbers))


def _partners(a: Number, target: Number, others: frozenset[Number]) -> bool:
    # Is there b in others with a op b == target or b op a == target? Inverting each operator turns the
    # search into set lookups, instead of building every value of the whole multiset.
    if target - a in others or a - target in others or target + a in others:
        return True
    if a != 0 and (_exact_div(target, a) in others or target * a in others):  # a*b, b/a
        return True
    if target != 0:
        return a != 0 and _exact_div(a, target) in others  # a/b == target  =>  b = a/target (non-zero)
    # target == 0: a*b == 0 needs a == 0 (b == 0 is covered by target - a above) and a/b == 0 needs a == 0.
    return a == 0


def is_solvable(numbers: Sequence[int], target: int) -> bool:
    """Whether some expression over ``numbers`` (each used once) equals ``target`` exactly."""
    items = _check_numbers(numbers)
    if len(items) == 1:
        return items[0] == target
    for left, right in _splits(items):
        left_values, right_values = _reachable_sorted(left), _reachable_sorted(right)
        if len(left_values) > len(right_values):
            left_values, right_values = right_values, left_values
        if any(_partners(a, target, right_values) for a in left_values):
            return True
    return False


def _format(op: str, left: tuple[str, int], right: tuple[str, int]) -> tuple[str, int]:
    # Minimal parentheses: a child binding looser than op needs them; so does an equal-precedence right child
    # of - or /, since those do not associate (a-(b-c) != a-b-c); + and * do, exactly, over the rationals.
    precedence = _PRECEDENCE[op]
    left_text = left[0] if left[1] >= precedence else f"({left[0]})"
    right_bare = right[1] > precedence or (right[1] == precedence and op in "+*")
    right_text = right[0] if right_bare else f"({right[0]})"
    return f"{left_text}{op}{right_text}", precedence


def _expressions(items: tuple[int, ...]) -> dict[Number, set[tuple[str, int]]]:
    # value -> {(expression text, precedence of its top operator)} over all bracketings and orders.
    if len(items) == 1:
        return {items[0]: {(str(items[0]), _LEAF)}}
    table: dict[Number, set[tuple[str, int]]] = {}
    for left_items, right_items in _splits(items):
        left_table, right_table = _expressions(left_items), _expressions(right_items)
        for a, a_texts in left_table.items():
            for b, b_texts in right_table.items():
                for x, x_texts, y, y_texts in ((a, a_texts, b, b_texts), (b, b_texts, a, a_texts)):
                    results = [("+", x + y), ("-", x - y), ("*", x * y)]
                    if y != 0:
                        results.append(("/", _exact_div(x, y)))
                    for op, value in results:
                        bucket = table.setdefault(value, set())
                        for x_text in x_texts:
                            for y_text in y_texts:
                                bucket.add(_format(op, x_text, y_text))
    return table


def solve(numbers: Sequence[int], target: int) -> list[str]:
    """Every expression (minimal parentheses, no spaces) that uses each number once and equals ``target``, sorted.

    Returns an empty list when the target is unreachable. Exhaustive: fine for 3-4 numbers, slow beyond 5.
    """
    items = _check_numbers(numbers)
    if target not in _reachable_sorted(items):
        return []
    return sorted({text for text, _ in _expressions(items)[target]}, key=lambda text: (len(text), text))
