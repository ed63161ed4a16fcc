"""Warm start: a few supervised steps lower the response loss, held-out problems are never trained on, and the
training targets are exactly what the strict reward accepts; a matching cache is reused, and a folder the warm start
did not write is refused with exit 2 and left as it was; the command reuses a matching cache without importing
transformers (the quickstart runs it before every launch).
"""

import logging
import random
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from deltal.cpu.warmstart import WarmStartSettings, answer_text, draw_training_pool, train_warm_start, warm_start
from deltal.cpu.warmstart import main as warmstart_main
from deltal.data.countdown import instance_key
from deltal.rewards.countdown import compute_score_strict


def test_a_few_steps_reduce_the_response_loss(tiny_assets):
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_assets)
    model = AutoModelForCausalLM.from_pretrained(tiny_assets, attn_implementation="sdpa")
    settings = WarmStartSettings(steps=25, batch_size=16, warmup_steps=5, problem_pool=200)
    losses = train_warm_start(model, tokenizer, settings)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < 0.7 * losses[0]


def test_held_out_problems_are_excluded_and_targets_score_one(tiny_assets):
    tokenizer = AutoTokenizer.from_pretrained(tiny_assets)
    held_out = [((7, 1, 5), 35), ((2, 3, 4), 24), ((10, 10, 1), 100)]
    pool = draw_training_pool(tokenizer, 300, random.Random(1), held_out)
    keys = {instance_key(numbers, target) for (numbers, target), _, _ in pool}
    assert len(keys) == len(pool) == 300
    assert not keys & {instance_key(n, t) for n, t in held_out}
    for (numbers, target), prompt, solutions in pool[:50]:
        assert solutions, "every drawn problem is solvable"
        assert tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")
        truth = {"target": target, "numbers": list(numbers)}
        assert compute_score_strict("countdown_easy", answer_text(solutions[0]), truth)["score"] == 1.0


def test_a_cached_warm_start_without_an_accuracy_is_reused_and_logged(tiny_assets, tmp_path, caplog):
    settings = WarmStartSettings(steps=2, batch_size=4, warmup_steps=1, problem_pool=20)
    out = tmp_path / "warm"
    warm_start(tiny_assets, out, settings)  # no held-out problems: the record's accuracy is None
    caplog.set_level(logging.INFO, logger="deltal.cpu.warmstart")
    assert warm_start(tiny_assets, out, settings) == out
    assert f"Reusing warm_start at {out} (held-out T=1 accuracy None)" in caplog.text


def test_the_command_refuses_an_out_folder_it_did_not_write_with_exit_2(tiny_assets, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("someone else's")
    assert warmstart_main(["--base", str(tiny_assets), "--out", str(foreign), "--steps", "1"]) == 2
    assert "was not written by warm_start; pass a new directory" in capsys.readouterr().err
    assert (foreign / "notes.txt").exists(), "nothing is deleted"


def test_the_command_reuses_a_matching_cache_without_importing_transformers(tiny_assets, tmp_path):
    arguments = ["--base", str(tiny_assets), "--out", str(tmp_path / "warm"), "--steps", "2", "--batch-size", "4"]
    assert warmstart_main(arguments) == 0
    code = (
        "import sys\n"
        "from deltal.cpu.warmstart import main\n"
        f"status = main({arguments!r})\n"
        "print(status, 'transformers' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Reusing warm_start" in result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0 False"
