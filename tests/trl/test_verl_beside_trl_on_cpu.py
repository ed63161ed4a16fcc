"""verl 0.9.1 still builds its models with the pinned TRL installed: one environment holds both.

Whenever TRL is importable, verl's model patch (``verl/models/transformers/monkey_patch.py``, ``apply_monkey_patch``,
called by the FSDP worker when it builds the actor) imports ``AutoModelForCausalLMWithValueHead`` from
``trl.experimental.ppo`` (or from ``trl``). TRL 1.13.0 removed both; with TRL 1.16.0 every verl run died there with
an ImportError. The pinned TRL must keep that import working, which is why it is 1.12.0. The patch changes
transformers' modules for the whole process, so it runs in a child process.
"""

import subprocess
import sys

import trl
from verl.utils.import_utils import is_trl_available

from deltal.trl import PINNED_TRL_VERSION

APPLY_VERLS_MODEL_PATCH = """
import sys
from transformers import AutoModelForCausalLM
from verl.models.transformers.monkey_patch import apply_monkey_patch
apply_monkey_patch(AutoModelForCausalLM.from_pretrained(sys.argv[1]))
print("verl patched the model")
"""


def test_verl_builds_a_model_with_the_pinned_trl_installed(tiny_model_dir):
    assert trl.__version__ == PINNED_TRL_VERSION and is_trl_available(), "the case under test: TRL is importable"
    command = [sys.executable, "-c", APPLY_VERLS_MODEL_PATCH, str(tiny_model_dir)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "verl patched the model" in result.stdout
