"""The server's fast path never disagrees with math-verify: on at least 5000 generated pairs (integers, decimals,
fractions, ``x = n`` answers and tuples, crowded around the values where rounding to 6 decimals and exactness
matter) plus the server tests' correctness tables, every verdict it gives is math-verify's own, and it stays silent
(None) on everything outside its grammar.

math-verify runs in the test process through ``equivalence.check_pair``, exactly as in a worker. A larger run:
``FAST_PATH_PARITY_PAIRS=50000 .venv/bin/python -m pytest tests/server/test_fast_path_on_cpu.py``."""

import concurrent.futures
import multiprocessing
import os
import random
import sys
from fractions import Fraction
from itertools import repeat
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server" / "math"))

from equivalence import check_pair  # noqa: E402
from fast_path import decide  # noqa: E402
from test_math_server_on_cpu import EQUIVALENCE_TABLE, EVERYDAY_TABLE  # noqa: E402

PAIRS = int(os.environ.get("FAST_PATH_PARITY_PAIRS", "5000"))


def decimal(value: Fraction, places: int) -> str:
    """``value`` rounded to ``places`` decimals, written out (no exponent; "-0.00" can occur, on purpose)."""
    return f"{float(value):.{places}f}"


def fraction(value: Fraction, style: str = "frac") -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}\\{style}{{{abs(value.numerator)}}}{{{value.denominator}}}"


def spellings(value: Fraction, rng: random.Random) -> str:
    """One way to write ``value`` (exactly or rounded) that the fast path may or may not accept."""
    choice = rng.randrange(6)
    if choice == 0 and value.denominator == 1:
        return str(value.numerator)
    if choice == 1:
        return fraction(value, rng.choice(["frac", "dfrac", "tfrac"]))
    if choice == 2:
        scale = rng.randint(1, 4)
        return f"{'-' if value < 0 else ''}\\frac{{{abs(value.numerator) * scale}}}{{{value.denominator * scale}}}"
    if choice == 3:
        return f"{rng.choice('xyna')} = {decimal(value, rng.randint(0, 6))}"
    return decimal(value, rng.choice([0, 1, 2, 3, 4, 5, 6, 6, 6, 7]))


def generated_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """(gold, prediction) pairs crowded around the fast path's decisions and boundaries."""
    rng = random.Random(seed)
    pairs: dict[tuple[str, str], None] = {}  # insertion-ordered set: distinct pairs only
    while len(pairs) < count:
        kind = rng.choices(range(5), weights=[30, 30, 25, 5, 10])[0]  # tuples are slow to parse: few of them
        magnitude = rng.choice([1, 10, 1000, 999_999])
        value = Fraction(rng.randint(-magnitude, magnitude), rng.choice([1, 1, 2, 3, 4, 7, 8, 25, 99, 1000]))
        if kind == 0:  # the same value, two spellings
            pairs.setdefault((spellings(value, rng), spellings(value, rng)))
        elif kind == 1:  # close values: around 10^-5 and 10^-6, where rounding to 6 decimals decides
            delta = Fraction(rng.choice([1, 2, 5, 9, 10, 11, 15, 50]), 10 ** rng.randint(5, 7))
            pairs.setdefault((spellings(value, rng), spellings(value + rng.choice([-1, 1]) * delta, rng)))
        elif kind == 2:  # unrelated values
            other = Fraction(rng.randint(-magnitude, magnitude), rng.choice([1, 3, 8]))
            pairs.setdefault((spellings(value, rng), spellings(other, rng)))
        elif kind == 3:  # tuples and intervals, spaced differently
            items = [decimal(Fraction(rng.randint(-99, 99), rng.choice([1, 4])), rng.randint(0, 2)) for _ in range(2)]
            brackets = rng.choice(["()", "[]", "[)", "(]"])
            gold = brackets[0] + ", ".join(items) + brackets[1]
            if rng.random() < 0.3:
                items[rng.randrange(2)] = "7"
            pairs.setdefault((gold, brackets[0] + ",".join(items) + brackets[1]))
        else:  # letters, signs and odd spellings the fast path must leave alone or read right
            text = rng.choice(["e = 5", "i = 1", "x=-0", "-0", "0.0", "5.", ".5", "05", "1,000", "\\frac12", "5\\%"])
            pairs.setdefault((rng.choice([str(value.numerator), decimal(value, 2)]), text))
    return list(pairs)


def fixture_pairs() -> list[tuple[str, str]]:
    return [(gold, prediction) for prediction, gold, _ in EQUIVALENCE_TABLE + EVERYDAY_TABLE]


def math_verify_statuses(pairs: list[tuple[str, str]]) -> list[str]:
    """check_pair on every pair, in two processes (each runs it in its main thread, where math-verify's alarms work)."""
    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        # A generous alarm: a loaded machine must not turn a verdict into "timeout".
        golds, predictions = zip(*pairs, strict=True)
        return list(pool.map(check_pair, golds, predictions, repeat(10), repeat(4000), chunksize=200))


def test_every_fast_verdict_is_math_verifys_own():
    candidates = fixture_pairs() + generated_pairs(2 * PAIRS)
    decided = [(gold, prediction, verdict) for gold, prediction in candidates if (verdict := decide(gold, prediction))]
    decided = decided[: PAIRS + len(fixture_pairs())]
    assert len(decided) >= PAIRS
    assert {verdict for _, _, verdict in decided} == {"equal", "not_equal"}
    statuses = math_verify_statuses([(gold, prediction) for gold, prediction, _ in decided])
    differences = [
        (gold, prediction, verdict, status)
        for (gold, prediction, verdict), status in zip(decided, statuses, strict=True)
        if status != verdict
    ]
    assert not differences, differences[:20]


def test_the_fast_path_leaves_what_it_cannot_prove_to_math_verify():
    undecided = [
        ("\\frac{1}{3}", "0.333333"),  # equal only after math-verify's rounding
        ("1", "1.000001"),  # 10^-6 apart: rounding decides
        ("5", "\\sqrt{25}"),
        ("1000", "1,000"),
        ("5", "e = 5"),
        ("(1,2)", "(2,1)"),
        ("x^2", "x^2"),
        ("1234567", "1234567"),  # beyond 6 digits
        ("\\$5", "5"),
    ]
    assert [decide(gold, prediction) for gold, prediction in undecided] == [None] * len(undecided)
    assert decide("\\frac{1}{2}", "0.5") == "equal"
    assert decide("5", "x = 5") == "equal"
    assert decide("[2, 5)", "[2,5)") == "equal"
    assert decide("\\frac{3}{5}", "0.7") == "not_equal"
