"""verl 0.9.1 still builds its models with the pinned TRL installed: one environment holds both.

Whenever TRL is importable, verl's model patch (``verl/models/transformers/monkey_patch.py``, ``apply_monkey_patch``,
called by the FSDP worker when it builds the actor) imports ``AutoModelForCausalLMWithValueHead`` from
``trl.experimental.ppo`` (or from ``trl``). TRL 1.13.0 removed it; with TRL 1.16.0 every verl run died there with an
ImportError. The pinned TRL must keep that import working, which is why it is 1.12.0. The patch runs here on the tiny
model with remove-padding off: the TRL import runs whatever the switches, and with them off nothing else is patched,
so transformers' modules stay as they are for the rest of the session.
"""

import trl
from transformers import AutoModelForCausalLM
from verl.models.transformers.monkey_patch import apply_monkey_patch
from verl.utils.import_utils import is_trl_available

from deltal.trl import PINNED_TRL_VERSION


def test_verl_patches_a_model_with_the_pinned_trl_installed(tiny_model_dir, capsys):
    assert trl.__version__ == PINNED_TRL_VERSION and is_trl_available(), "the case under test: TRL is importable"
    apply_monkey_patch(AutoModelForCausalLM.from_pretrained(tiny_model_dir), use_remove_padding=False)
    assert "Monkey patch state_dict in AutoModelForCausalLMWithValueHead" in capsys.readouterr().out
