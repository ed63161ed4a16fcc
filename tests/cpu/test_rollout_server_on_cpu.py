"""deltal_hf rollout server (without Ray): concurrent requests are sampled as one batch, the token budget and the
log-prob request are honoured, EOS comes from the model's generation config, and weight updates really replace
the served weights (unknown names are refused); several requests sent in one call are answered each in place.
"""

import asyncio
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import deltal.sampling as sampling
from deltal.cpu.token_server import HFTokenServer


@pytest.fixture()
def server(tiny_assets):
    config = SimpleNamespace(response_length=24, prompt_length=32, seed=0)
    return HFTokenServer(config=config, model_config=SimpleNamespace(path=str(tiny_assets)), replica_rank=0)


@pytest.fixture()
def batch_sizes(monkeypatch):
    """The size of every batch the server samples, in order."""
    sizes = []
    real_generate_batch = sampling.generate_batch

    def counting_generate_batch(model, prompts, *args):
        sizes.append(len(prompts))
        return real_generate_batch(model, prompts, *args)

    # The server looks generate_batch up in deltal.sampling at each batch (its imports are deferred).
    monkeypatch.setattr(sampling, "generate_batch", counting_generate_batch)
    return sizes


def _prompts(tiny_assets, count):
    tokenizer = AutoTokenizer.from_pretrained(tiny_assets)
    texts = [f"Use {i} 2 3 to make {i + 5}." for i in range(1, count + 1)]
    return [
        tokenizer.encode(
            tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True),
            add_special_tokens=False,
        )
        for t in texts
    ]


def test_concurrent_requests_are_served_in_one_batch_with_requested_fields(server, tiny_assets, batch_sizes):
    prompts = _prompts(tiny_assets, 8)

    async def serve():
        await server.set_global_steps(7)
        requests = [
            server.generate(
                prompt_ids=p, sampling_params={"temperature": 1.0, "logprobs": i % 2 == 0}, request_id=str(i)
            )
            for i, p in enumerate(prompts)
        ]
        return await asyncio.gather(*requests)

    outputs = asyncio.run(serve())
    assert batch_sizes == [8]
    eos = server.eos_token_ids
    assert eos == {AutoTokenizer.from_pretrained(tiny_assets).eos_token_id}
    for i, output in enumerate(outputs):
        assert 1 <= len(output.token_ids) <= 24
        assert output.token_ids[-1] in eos or len(output.token_ids) == 24
        assert (output.log_probs is not None) == (i % 2 == 0)
        assert output.extra_fields["global_steps"] == 7
        assert output.stop_reason == "completed"


def test_max_tokens_caps_the_response(server, tiny_assets):
    async def serve():
        params = {"temperature": 1.0, "max_tokens": 3, "ignore_eos": True, "logprobs": True}
        return await server.generate(prompt_ids=_prompts(tiny_assets, 1)[0], sampling_params=params, request_id="a")

    output = asyncio.run(serve())
    assert len(output.token_ids) == 3 and len(output.log_probs) == 3


def test_weight_updates_replace_the_served_weights(server, tiny_assets):
    other = AutoModelForCausalLM.from_pretrained(tiny_assets)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(0.5)
    loaded = asyncio.run(server.load_weights(dict(other.named_parameters())))
    assert loaded == len(list(other.named_parameters()))
    for name, parameter in other.state_dict().items():
        assert torch.equal(server.model.state_dict()[name], parameter)
    with pytest.raises(KeyError, match="does not have"):
        asyncio.run(server.load_weights({"not.a.weight": torch.zeros(1)}))


def test_image_inputs_are_refused(server):
    with pytest.raises(NotImplementedError, match="text-only"):
        asyncio.run(server.generate(prompt_ids=[1, 2], sampling_params={}, request_id="x", image_data=[object()]))


def test_generate_many_answers_each_request_in_one_batch_and_returns_failures_in_place(
    server, tiny_assets, batch_sizes
):
    prompts = _prompts(tiny_assets, 3)
    requests = [
        {"prompt_ids": prompts[0], "sampling_params": {"temperature": 1.0, "logprobs": True}, "request_id": "a"},
        {"prompt_ids": prompts[1], "sampling_params": {"temperature": 1.0}, "request_id": "b", "image_data": ["x"]},
        {"prompt_ids": prompts[2], "sampling_params": {"temperature": 1.0}, "request_id": "c"},
    ]
    results = asyncio.run(server.generate_many(requests))
    assert batch_sizes == [2]
    assert isinstance(results[1], NotImplementedError)
    assert results[0].log_probs is not None and results[2].log_probs is None
    assert all(1 <= len(results[i].token_ids) <= 24 for i in (0, 2))
