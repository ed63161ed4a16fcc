"""The math reward extracts the last boxed answer, decides exact matches and missing answers without the server,
batches concurrent server checks into few /verify calls (also when driven by verl's own reward-loop worker and
naive/DAPO reward managers), retries transient server errors, and stops with an error naming
`bash server/math/start.sh` when the server is down, never with silent zeros."""

import asyncio
import concurrent.futures
import socket

import numpy as np
import pytest
import torch
from fake_math_server import FakeMathServer
from omegaconf import OmegaConf

from deltal.rewards import math as math_reward
from deltal.rewards.math_answer import extract_boxed_answer, normalize_answer
from deltal.rewards.math_client import MathServerClient, check_server_health, shared_batcher


@pytest.fixture
def fake_server(monkeypatch):
    server = FakeMathServer()
    monkeypatch.setenv("MATH_SERVER_URL", server.url)
    yield server
    server.close()


@pytest.fixture
def dead_url(monkeypatch):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("MATH_SERVER_URL", url)
    monkeypatch.setenv("MATH_CLIENT_RETRIES", "1")
    monkeypatch.setenv("MATH_CLIENT_BACKOFF_S", "0.01")
    return url


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so the answer is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("first \\boxed{3}, then corrected: \\boxed{7}", "7"),
        ("sets: \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("nested \\boxed{x^{2}+\\sqrt{y_{1}}}", "x^{2}+\\sqrt{y_{1}}"),
        ("old style \\fbox{12}", "12"),
        ("tex spacing \\boxed 5$", "5"),
        ("cut off \\boxed{3} and \\boxed{\\frac{1}{", None),
        ("no box at all: 42", None),
        ("empty \\boxed{ }", None),
        ("\\boxedx{3}", None),
    ],
)
def test_extract_boxed_answer_takes_the_last_complete_box(text, answer):
    assert extract_boxed_answer(text) == answer


@pytest.mark.parametrize(
    ("left", "right"),
    [("$x + 1$", "x+1"), ("\\left( 1, 2 \\right)", "(1,2)"), ("\\dfrac{1}{2}.", "\\frac{1}{2}")],
)
def test_normalize_answer_removes_only_notation(left, right):
    assert normalize_answer(left) == normalize_answer(right)


@pytest.mark.parametrize(("left", "right"), [("2 3", "23"), ("\\pi r", "\\pir"), ("1/2", "0.5"), ("x", "X")])
def test_normalize_answer_keeps_what_can_change_the_value(left, right):
    assert normalize_answer(left) != normalize_answer(right)


def test_exact_match_and_missing_answer_are_scored_without_the_server(dead_url):
    assert math_reward.compute_score("math500", "thus \\boxed{ \\dfrac{1}{2} }", "\\frac{1}{2}") == {
        "score": 1.0,
        "acc": 1.0,
        "status": "exact_match",
    }
    assert math_reward.compute_score("math500", "I give up", "7") == {
        "score": 0.0,
        "acc": 0.0,
        "status": "no_boxed_answer",
    }
    assert shared_batcher(dead_url).requests_sent == 0


def test_an_answer_longer_than_the_server_parses_is_never_cut_and_scores_0_without_the_server(dead_url):
    ones = "\\begin{pmatrix}" + "\\\\".join(["&".join(["1"] * 60)] * 60) + "\\end{pmatrix}"
    assert math_reward.compute_score("math500", f"so \\boxed{{{ones}}}", "1") == {
        "score": 0.0,
        "acc": 0.0,
        "status": "too_long",
    }
    assert math_reward.compute_score("math500", "\\boxed{1}", ones)["status"] == "gold_too_long"
    assert shared_batcher(dead_url).requests_sent == 0


def test_numeric_ground_truths_are_compared_as_integers_when_integral(dead_url):
    assert math_reward.compute_score("amc", "\\boxed{142}", 142.0)["status"] == "exact_match"


@pytest.mark.parametrize("ground_truth", [True, None, ["1"], {"value": "1"}])
def test_a_ground_truth_that_is_not_a_string_or_number_raises_naming_the_builder(dead_url, ground_truth):
    with pytest.raises(TypeError, match="deltal.data.math"):
        math_reward.compute_score("math500", "\\boxed{1}", ground_truth)


def test_an_empty_ground_truth_raises(dead_url):
    with pytest.raises(ValueError, match="empty"):
        math_reward.compute_score("math500", "\\boxed{1}", "  ")


def test_concurrent_async_scores_share_few_verify_calls(fake_server):
    async def score_all():
        return await asyncio.gather(
            *[math_reward.compute_score_async("math500", f"\\boxed{{{i}/2}}", str(i / 2)) for i in range(1, 65)],
            math_reward.compute_score_async("math500", "\\boxed{0.3}", "1/3"),
        )

    results = asyncio.run(score_all())
    assert [r["score"] for r in results] == [1.0] * 64 + [0.0]
    assert [r["status"] for r in results[-2:]] == ["equal", "not_equal"]
    assert sum(fake_server.verify_calls) == 65
    assert len(fake_server.verify_calls) <= 3


def test_blocking_scores_from_threads_are_batched_too(fake_server):
    with concurrent.futures.ThreadPoolExecutor(16) as threads:
        results = list(
            threads.map(lambda i: math_reward.compute_score("minerva", f"\\boxed{{{i}/4}}", str(i / 4)), range(64))
        )
    assert all(r["score"] == 1.0 for r in results)
    assert sum(fake_server.verify_calls) == 64
    assert len(fake_server.verify_calls) < 64 // 4


def test_transient_server_errors_are_retried(fake_server):
    fake_server.fail_next = [503, 500]
    client = MathServerClient(fake_server.url, retries=3, backoff_s=0.01)
    assert client.verify([("0.5", "1/2"), ("2", "3")]) == ["equal", "not_equal"]
    assert fake_server.fail_next == []


def test_checks_lost_to_a_broken_server_pool_are_asked_again(fake_server):
    fake_server.pool_broken_next = 2
    client = MathServerClient(fake_server.url, retries=3, backoff_s=0.01)
    assert client.verify([("0.5", "1/2"), ("2", "3")]) == ["equal", "not_equal"]
    assert fake_server.verify_calls == [2, 2, 2]
    fake_server.pool_broken_next = 5  # still broken when the retries run out: the status is passed on, scored 0
    assert MathServerClient(fake_server.url, retries=1, backoff_s=0.01).verify([("1", "1")]) == ["pool_broken"]


def test_a_rejected_request_raises_at_once_with_the_http_status(fake_server):
    fake_server.fail_next = [422, 422]
    client = MathServerClient(fake_server.url, retries=3, backoff_s=0.01)
    with pytest.raises(RuntimeError, match="HTTP 422"):
        client.verify([("0.5", "1/2")])
    assert fake_server.fail_next == [422]  # not retried


def test_a_server_that_stays_down_stops_scoring_with_the_start_command(dead_url):
    with pytest.raises(RuntimeError, match=r"bash server/math/start\.sh"):
        math_reward.compute_score("math500", "\\boxed{0.5}", "1/2")
    with pytest.raises(RuntimeError, match=r"bash server/math/start\.sh"):
        asyncio.run(math_reward.compute_score_async("math500", "\\boxed{0.25}", "1/4"))


def test_check_server_health_passes_on_ok_and_names_the_fix_otherwise(dead_url, fake_server):
    check_server_health(fake_server.url)
    with pytest.raises(RuntimeError, match=r"unreachable.*bash server/math/start\.sh"):
        check_server_health(dead_url, timeout=1.0)
    fake_server.health_status = 503
    with pytest.raises(RuntimeError, match="still starting"):
        check_server_health(fake_server.url)
    fake_server.health_status = 404
    with pytest.raises(RuntimeError, match="MATH_SERVER_URL"):
        check_server_health(fake_server.url)


class _IndexTokenizer:
    """Decodes a response whose first token id is i to RESPONSES[i] (verl only calls decode here)."""

    def __init__(self, texts):
        self.texts = texts

    def decode(self, ids, skip_special_tokens=True):
        return self.texts[int(ids[0])]


def _rollout_batch(texts: list[str], golds: list[str], valid_lengths: list[int], response_width: int = 8):
    from verl import DataProto

    n = len(texts)
    prompts = torch.ones((n, 2), dtype=torch.long)
    responses = torch.zeros((n, response_width), dtype=torch.long)
    responses[:, 0] = torch.arange(n)
    response_mask = (torch.arange(response_width)[None, :] < torch.tensor(valid_lengths)[:, None]).long()
    return DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": responses,
            "attention_mask": torch.cat([torch.ones_like(prompts), response_mask], dim=1),
        },
        non_tensors={
            "data_source": np.array(["open_reasoner_zero"] * n, dtype=object),
            "reward_model": np.array([{"ground_truth": gold, "style": "rule"} for gold in golds], dtype=object),
            "extra_info": np.array([{"index": i} for i in range(n)], dtype=object),
        },
    )


def _verl_reward_loop_worker(manager: str, texts: list[str], reward_kwargs: dict | None = None):
    """verl's RewardLoopWorker with the reward manager verl itself builds from these config keys (no Ray actor)."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.reward import load_reward_manager

    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {"path": "pkg://deltal.rewards.math", "name": "compute_score_async"},
                "reward_manager": {"source": "register", "name": manager, "module": {"path": None, "name": None}},
                "reward_model": {"enable": False},
                "reward_kwargs": reward_kwargs or {},
            }
        }
    )
    worker = RewardLoopWorker.__new__(RewardLoopWorker)  # skips loading a tokenizer from a model path
    worker.config = config
    worker.reward_router_address = None
    worker.reward_manager = load_reward_manager(config, _IndexTokenizer(texts))
    return worker


def test_verl_naive_reward_loop_scores_a_step_with_few_verify_calls(fake_server):
    n = 48
    texts = [f"reasoning... \\boxed{{{i}/8}}" if i % 3 else "no final answer" for i in range(n)]
    golds = [str(i / 8) if i % 2 else str(i / 8 + 1) for i in range(n)]
    worker = _verl_reward_loop_worker("naive", texts)
    outputs = worker.reward_manager.loop.run_until_complete(
        worker.compute_score_batch(_rollout_batch(texts, golds, [8] * n))
    )
    expected = [1.0 if (i % 3 and i % 2) else 0.0 for i in range(n)]
    assert [out["reward_score"] for out in outputs] == expected
    assert {out["reward_extra_info"]["status"] for out in outputs} == {"equal", "not_equal", "no_boxed_answer"}
    assert sum(fake_server.verify_calls) == sum(1 for i in range(n) if i % 3)
    assert len(fake_server.verify_calls) <= 3


def test_verl_dapo_reward_loop_adds_its_overlong_penalty_to_batched_math_scores(fake_server):
    n = 24
    texts = [f"\\boxed{{{i}/4}}" for i in range(n)]
    golds = [str(i / 4) for i in range(n)]
    lengths = [3 + i % 6 for i in range(n)]  # 3..8 valid tokens; the buffer starts after 8 - 4 = 4
    overlong = {"overlong_buffer_cfg": {"enable": True, "len": 4, "penalty_factor": 1.0, "log": False}}
    worker = _verl_reward_loop_worker("dapo", texts, {**overlong, "max_resp_len": 8})
    outputs = worker.reward_manager.loop.run_until_complete(
        worker.compute_score_batch(_rollout_batch(texts, golds, lengths))
    )
    expected = [1.0 + min(-(length - 4) / 4, 0.0) for length in lengths]
    assert [float(out["reward_score"]) for out in outputs] == pytest.approx(expected)
    assert len(fake_server.verify_calls) <= 3
