"""Where the analysis tools find a model's weights in a verl checkpoint (verl 0.9.1's layout)."""

from __future__ import annotations

from pathlib import Path

# The Hugging Face copy of the actor inside ``<run>/checkpoints/global_step_<n>/``, written when
# ``actor_rollout_ref.actor.checkpoint.save_contents`` includes ``hf_model``.
VERL_HF_FOLDER = Path("actor") / "huggingface"


def model_folder(path: Path) -> Path:
    """The folder holding the weights: ``path`` itself, or the Hugging Face copy inside a verl ``global_step_<n>``."""
    for folder in (path, path / VERL_HF_FOLDER):
        if any(folder.glob("*.safetensors")):
            return folder
    raise FileNotFoundError(
        f"{path} holds no *.safetensors weights: pass a Hugging Face model folder or a verl checkpoint "
        f"(global_step_<n>) saved with actor_rollout_ref.actor.checkpoint.save_contents including hf_model"
    )
