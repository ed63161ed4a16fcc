"""Decides the common easy pairs (plain integers, decimals, simple fractions, identical numeric tuples) in the server
process, without sympy and without a worker, and only where the verdict is provably math-verify's own.

Library module of ``server/math``; pure string and ``fractions`` work, microseconds per pair. :func:`decide` returns
``"equal"``, ``"not_equal"`` or None; None (anything it is not sure about) sends the pair to math-verify as before.
Why each verdict equals math-verify 0.9.0's (docs/math-verification.md, "Comparing"):

- Numbers are read only in a narrow grammar: an optional minus, at most 6 integer digits without leading zeros, an
  optional point and at most 6 decimals; ``\\frac{a}{b}`` (``\\dfrac``, ``\\tfrac``) with such integers and b >= 1.
  So every value is below 10^6 in magnitude and exact as a Fraction.
- Equal values: math-verify compares two exact numbers exactly, and a float with anything by rounding both to 6
  decimals; equal values stay equal either way -> "equal".
- Values more than 10^-5 apart: rounding to 6 decimals moves each by at most 5x10^-7, and a 15-digit evaluation of
  numbers below 10^6 errs by far less than 10^-5, so no comparison of math-verify can find them equal ->
  "not_equal". Closer values (1/3 against 0.333333) are left to math-verify.
- ``x = 5`` as the prediction is read as its right-hand side, as math-verify does for an assignment to a single
  letter (``e`` and ``i`` are excluded: math-verify may read them as constants).
- Two tuples or intervals of such numbers that are the same text up to spaces parse to the same object -> "equal".

tests/server/test_fast_path_on_cpu.py checks every verdict against math-verify itself on thousands of pairs.
"""

from __future__ import annotations

import re
from fractions import Fraction

EQUAL = "equal"
NOT_EQUAL = "not_equal"

_NUMBER = r"-?(?:0|[1-9]\d{0,5})(?:\.\d{1,6})?"
_INTEGER = r"(?:0|[1-9]\d{0,5})"
_SCALAR = re.compile(
    rf"(?P<number>{_NUMBER})|(?P<sign>-?)\\[dt]?frac\{{(?P<numerator>{_INTEGER})\}}\{{(?P<denominator>[1-9]\d{{0,5}})\}}"
)
_ASSIGNMENT = re.compile(r"(?P<letter>[a-df-hj-zA-Z])\s*=\s*(?P<value>.+)")
_TUPLE = re.compile(rf"[\[(]{_NUMBER}(?:,{_NUMBER})+[\])]")
_SEPARATION = Fraction(1, 10**5)


def _scalar(text: str) -> Fraction | None:
    match = _SCALAR.fullmatch(text)
    if match is None:
        return None
    if match.group("number") is not None:
        return Fraction(match.group("number"))
    value = Fraction(int(match.group("numerator")), int(match.group("denominator")))
    return -value if match.group("sign") else value


def decide(gold: str, prediction: str) -> str | None:
    """``"equal"`` / ``"not_equal"`` where that is provably math-verify's verdict on (gold, prediction), else None.
    Both strings as the checker would parse them (``equivalence.answer_region``)."""
    gold_value = _scalar(gold)
    if gold_value is not None:
        assignment = _ASSIGNMENT.fullmatch(prediction)
        predicted = _scalar(assignment.group("value") if assignment else prediction)
        if predicted is None:
            return None
        if predicted == gold_value:
            return EQUAL
        return NOT_EQUAL if abs(predicted - gold_value) > _SEPARATION else None
    squashed = gold.replace(" ", "")
    if _TUPLE.fullmatch(squashed) and prediction.replace(" ", "") == squashed:
        return EQUAL
    return None
