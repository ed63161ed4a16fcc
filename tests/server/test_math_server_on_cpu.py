"""The math server, run as a real process through start.sh, judges equivalence correctly, bounds every adversarial
input in time, keeps one hung item from delaying a batch, stays healthy afterwards, and rejects malformed or oversized
requests with 4xx responses that never echo the input."""

import json
import socket
import time

import httpx
import pytest
from math_server_process import BODY_TIMEOUT_S, HARD_TIMEOUT_S, INNER_TIMEOUT_S, MAX_BODY_BYTES

from deltal.rewards.math import compute_score

# (prediction, ground truth, expected equal); pairs of the kind measured for docs/math-verification.md.
EQUIVALENCE_TABLE = [
    ("0.6", "\\frac{3}{5}", True),
    ("3/5", "0.6", True),
    ("\\dfrac{1}{2}", "1/2", True),
    ("\\tfrac12", "0.5", True),
    ("0.33", "\\frac{1}{3}", False),
    ("-0.5", "-\\frac12", True),
    ("[2,5)", "[2,5)", True),
    ("(2,5)", "[2,5]", False),
    ("(-\\infty,1)\\cup(2,\\infty)", "(-\\infty, 1) \\cup (2, \\infty)", True),
    ("\\{3,1,2\\}", "\\{1,2,3\\}", True),
    ("(1,2)", "(2,1)", False),
    ("(1, 2, 3)", "(1,2,3)", True),
    ("30", "30^\\circ", True),
    ("30^{\\circ}", "30", True),
    ("50", "50\\%", True),
    ("\\sqrt{8}", "2\\sqrt{2}", True),
    ("2^{1/2}", "\\sqrt{2}", True),
    ("1.41421356", "\\sqrt2", True),
    ("\\sqrt{3}", "\\sqrt{2}", False),
    ("2\\pi", "2\\pi", True),
    ("3.14159265358979", "\\pi", True),
    ("3.14", "\\pi", False),
    ("1500", "1.5\\times10^3", True),
    ("\\text{Monday}", "\\text{Monday}", True),
    ("Monday", "\\text{Monday}", True),
    ("\\text{Tuesday}", "\\text{Monday}", False),
    ("5", "x=5", True),
    ("x=5", "5", True),
    ("y=5", "x=5", False),
    ("5\\text{ cm}", "5", True),
    ("C", "C", True),
    ("(C)", "C", True),
    ("B", "C", False),
    ("(x+1)^2", "x^2+2x+1", True),
    ("x^2+2x", "x^2+2x+1", False),
    ("1,000,000", "1000000", True),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", True),
    ("\\begin{pmatrix}1\\\\3\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", False),
    ("7", "7", True),
    ("8", "7", False),
    ("", "7", False),
    ("asdf qwer !!", "7", False),
    ("\\boxed{3} or \\boxed{7}", "7", False),  # several answers are never rewarded (fails safe)
    ("\\frac{a}{b", "\\frac{a}{b}", False),
    ("1e3", "1000", False),  # known limitation: e is read as Euler's number
]
# Currency, units, percent and thousands separators, in both directions (an escaped \$ is a price, not math mode).
EVERYDAY_TABLE = [
    ("\\$5", "5", True),
    ("5", "\\$5", True),
    ("\\$18.90", "18.90", True),
    ("18.90", "\\$18.90", True),
    ("\\$1,000", "1000", True),
    ("1000", "\\$1,000", True),
    ("\\$4", "4 \\text{ dollars}", True),
    ("\\$6", "\\$5", False),
    ("6", "\\$5", False),
    ("12\\text{ cm}", "12", True),
    ("12", "12 \\text{ cm}", True),
    ("100\\text{ km}", "100", True),
    ("13", "12\\text{ cm}", False),
    ("10\\%", "10", True),
    ("10", "10\\%", True),
    ("11", "10\\%", False),
    ("1{,}000", "1000", True),
    ("1000", "1{,}000", True),
    ("1,234,567", "1234567", True),
    ("1234567", "1,234,567", True),
    ("1,001", "1000", False),
]

ADVERSARIAL_PREDICTIONS = {
    "power tower": "$9^{9^{9^{9}}}$",
    "huge power": "$2^{2^{30}}$",
    "factorial tower": "$(10^{10})!$",
    "big binomial": "\\binom{10^9}{10^8}",
    "huge expansion": "$(x+y+z+w)^{200}$",
    "deep braces": "$" + "{" * 10_000 + "1" + "}" * 10_000 + "$",
    "deep fractions": "$" + "\\frac{" * 10_000 + "$",
    "nested sines": "$" + "\\sin(" * 300 + "x" + ")" * 300 + "$",
    "long sum": "$" + "+".join(["x"] * 5000) + "$",
    "nul bytes": "7\x00\x00\\frac{1}{\x00}\x00",
}
SLACK_S = 3.0


def post(server, path: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", timeout=120, **kwargs)


def verify(server, pairs: list[tuple[str, str]]) -> list[dict]:
    response = post(server, "/verify", json={"pairs": [{"prediction": p, "ground_truth": g} for p, g in pairs]})
    assert response.status_code == 200, response.text[:300]
    return response.json()["results"]


def test_health_reports_ready_workers_and_timeouts(math_server):
    body = httpx.get(f"{math_server.url}/health", timeout=5).json()
    assert body["status"] == "ok"
    assert body["workers"] == 2
    assert body["inner_timeout_s"] == INNER_TIMEOUT_S
    assert body["hard_timeout_s"] == HARD_TIMEOUT_S


def test_verify_matches_the_equivalence_table_in_order(patient_math_server):
    assert len(EQUIVALENCE_TABLE) >= 40
    results = verify(patient_math_server, [(pred, gold) for pred, gold, _ in EQUIVALENCE_TABLE])
    wrong = [
        (pred, gold, expected, result)
        for (pred, gold, expected), result in zip(EQUIVALENCE_TABLE, results, strict=True)
        if result["equal"] is not expected
    ]
    assert not wrong
    for result in results:
        assert isinstance(result["equal"], bool)
        assert (result["status"] == "equal") is result["equal"]


def test_verify_scores_currency_units_percent_and_thousands(patient_math_server):
    results = verify(patient_math_server, [(pred, gold) for pred, gold, _ in EVERYDAY_TABLE])
    assert [result["equal"] for result in results] == [expected for _, _, expected in EVERYDAY_TABLE]


@pytest.mark.parametrize(("prediction", "gold", "expected"), EVERYDAY_TABLE)
def test_is_equal_scores_currency_units_percent_and_thousands(patient_math_server, prediction, gold, expected):
    response = post(patient_math_server, "/is_equal", json={"str1": prediction, "str2": gold})
    assert response.json()["equal"] is expected


def test_the_math_reward_scores_a_boxed_dollar_answer_1_end_to_end(math_server, monkeypatch):
    monkeypatch.setenv("MATH_SERVER_URL", math_server.url)
    assert compute_score("math500", "The total is \\boxed{\\$5}.", "5")["score"] == 1.0
    assert compute_score("math500", "The total is \\boxed{5}.", "\\$5")["score"] == 1.0


def test_a_long_answer_is_never_judged_by_its_tail(math_server):
    ones = "\\begin{pmatrix}" + "\\\\".join(["&".join(["1"] * 60)] * 60) + "\\end{pmatrix}"
    assert verify(math_server, [(ones, "1"), ("1", ones)]) == [
        {"equal": False, "status": "too_long"},
        {"equal": False, "status": "gold_too_long"},
    ]


def test_plain_numbers_are_decided_by_the_fast_path_with_math_verifys_verdicts(math_server):
    before = httpx.get(f"{math_server.url}/health", timeout=5).json()["fast_path_decided"]
    results = verify(math_server, [("0.5", "\\frac{1}{2}"), ("x = 7", "7"), ("0.7", "\\frac{3}{5}"), ("41", "42")])
    assert [result["status"] for result in results] == ["equal", "equal", "not_equal", "not_equal"]
    assert httpx.get(f"{math_server.url}/health", timeout=5).json()["fast_path_decided"] == before + 4


def test_is_equal_takes_the_prediction_as_str1_and_the_gold_as_str2(math_server):
    response = post(math_server, "/is_equal", json={"str1": "0.6", "str2": "\\frac{3}{5}"})
    assert response.json() == {"equal": True, "status": "equal"}
    response = post(math_server, "/is_equal", json={"str1": "banana", "str2": "7"})
    assert response.json()["equal"] is False


def test_unreadable_ground_truth_is_reported_as_gold_parse_error(math_server):
    (result,) = verify(math_server, [("5", "")])
    assert result == {"equal": False, "status": "gold_parse_error"}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL_PREDICTIONS))
def test_each_adversarial_prediction_is_answered_within_the_hard_timeout(math_server, name):
    started = time.monotonic()
    response = post(math_server, "/is_equal", json={"str1": ADVERSARIAL_PREDICTIONS[name], "str2": "5"})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["equal"] is False
    assert elapsed < HARD_TIMEOUT_S + SLACK_S


def test_a_one_megabyte_answer_within_the_body_limit_is_checked_by_its_tail(math_server):
    prose = "blah " * 200_000 + "\\boxed{42}"
    assert len(prose) > 1_000_000
    started = time.monotonic()
    results = verify(math_server, [(prose, "42"), ("1" * 1_000_000, "5")])
    assert results == [{"equal": True, "status": "equal"}, {"equal": False, "status": "too_long"}]
    assert time.monotonic() - started < HARD_TIMEOUT_S + SLACK_S


def test_one_hung_item_does_not_delay_the_rest_of_its_batch(math_server):
    easy = [(str(i), f"{i}/1") for i in range(1, 41)]
    clean_started = time.monotonic()
    clean = verify(math_server, easy)
    clean_s = time.monotonic() - clean_started

    mixed_started = time.monotonic()
    mixed = verify(math_server, [*easy[:20], ("$9^{9^{9^{9}}}$", "5"), *easy[20:]])
    mixed_s = time.monotonic() - mixed_started

    assert mixed[20]["equal"] is False and mixed[20]["status"] == "timeout"
    assert mixed[:20] + mixed[21:] == clean
    assert all(result["equal"] for result in clean)
    # The hung item occupies one of two workers for at most the hard timeout; the others run meanwhile.
    assert mixed_s < clean_s + HARD_TIMEOUT_S + SLACK_S


def test_pool_is_healthy_and_correct_after_the_adversarial_inputs(math_server):
    verify(math_server, [(prediction, "5") for prediction in ADVERSARIAL_PREDICTIONS.values()])
    assert httpx.get(f"{math_server.url}/health", timeout=5).status_code == 200
    assert verify(math_server, [("\\frac{1}{2}", "0.5"), ("3", "4")]) == [
        {"equal": True, "status": "equal"},
        {"equal": False, "status": "not_equal"},
    ]


def test_malformed_json_gets_400_without_echo(math_server):
    secret = "SECRET-PAYLOAD-" * 100
    response = post(
        math_server, "/verify", content=b'{"pairs": [' + secret.encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "SECRET" not in response.text


@pytest.mark.parametrize(
    "payload",
    [
        {"str1": 5, "str2": "5"},
        {"str1": None, "str2": "5"},
        {"str1": "5"},
        {"str1": "5", "str2": "5", "SECRET-KEY": "x"},
        {"str1": "SECRET" * 10, "str2": ["SECRET"]},
    ],
    ids=["number", "null", "missing", "extra-field", "list"],
)
def test_invalid_fields_get_422_that_names_the_field_but_never_echoes_input(math_server, payload):
    response = post(math_server, "/is_equal", json=payload)
    assert response.status_code == 422
    assert "SECRET" not in response.text
    assert response.json()["detail"][0]["loc"][0] == "body"


def test_a_lone_surrogate_gets_422_not_500(math_server):
    body = b'{"str1": "\\ud800", "str2": "5"}'
    response = post(math_server, "/is_equal", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "ud800" not in response.text.lower()


def test_an_oversized_body_gets_413_by_content_length_and_when_streamed(math_server):
    oversized = json.dumps({"str1": "1" * (MAX_BODY_BYTES + 10), "str2": "5"}).encode()
    response = post(math_server, "/is_equal", content=oversized, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert len(response.content) < 300

    def chunks():  # no Content-Length: the middleware has to count
        for start in range(0, len(oversized), 256 * 1024):
            yield oversized[start : start + 256 * 1024]

    response = post(math_server, "/is_equal", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_a_body_that_stalls_gets_408_and_the_connection_is_closed(math_server):
    head = "POST /is_equal HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    with socket.create_connection(("127.0.0.1", math_server.port), timeout=BODY_TIMEOUT_S + SLACK_S) as sock:
        started = time.monotonic()
        sock.sendall(head.encode() + b'{"str1": "')  # 10 of the 100 bytes declared, then nothing
        reply = b""
        while chunk := sock.recv(4096):  # the server closes the connection after answering
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    assert b"request body not received" in reply
    assert time.monotonic() - started < BODY_TIMEOUT_S + SLACK_S


def test_a_batch_over_the_size_limit_gets_422(math_server):
    limit = httpx.get(f"{math_server.url}/health", timeout=5).json()["max_batch"]
    pairs = [{"prediction": "1", "ground_truth": "1"}] * (limit + 1)
    response = post(math_server, "/verify", json={"pairs": pairs})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "pairs"]
