"""`drift` measures how far a checkpoint's weights moved from the base model, over every tensor and shard, reads
verl's checkpoint layout, and refuses folders that are not the same model."""

import math

import pytest
import torch
from safetensors.torch import save_file

from deltal.analysis.__main__ import main
from deltal.analysis.weight_drift import weight_drift


def save_model(folder, shards):
    folder.mkdir(parents=True)
    for index, tensors in enumerate(shards):
        save_file(tensors, str(folder / f"model-{index:05d}.safetensors"))
    return folder


@pytest.fixture
def base(tmp_path):
    return save_model(tmp_path / "base", [{"a": torch.tensor([3.0, 0.0])}, {"b": torch.tensor([[0.0], [4.0]])}])


def test_distance_spans_every_tensor_of_every_shard(tmp_path, base):
    moved = save_model(tmp_path / "moved", [{"a": torch.tensor([4.0, 0.0])}, {"b": torch.tensor([[2.0], [4.0]])}])
    (row,) = weight_drift(base, [moved]).to_dict("records")
    assert row["distance"] == pytest.approx(math.sqrt(1 + 4))
    assert row["relative_distance"] == pytest.approx(math.sqrt(5) / 5)  # the base's norm is sqrt(9 + 16)
    assert row["max_abs_change"] == pytest.approx(2.0)
    assert weight_drift(base, [base]).loc[0, "distance"] == 0.0


def test_a_verl_checkpoint_is_read_from_its_hugging_face_copy(tmp_path, base):
    step = tmp_path / "run" / "checkpoints" / "global_step_20"
    save_model(step / "actor" / "huggingface", [{"a": torch.tensor([3.0, 1.0]), "b": torch.tensor([[0.0], [4.0]])}])
    assert weight_drift(base, [step]).loc[0, "distance"] == pytest.approx(1.0)


def test_another_model_is_refused_with_the_fix(tmp_path, base):
    other = save_model(tmp_path / "other", [{"a": torch.tensor([3.0, 0.0, 1.0]), "b": torch.tensor([[0.0], [4.0]])}])
    with pytest.raises(ValueError, match="not the same model.*--base"):
        weight_drift(base, [other])


def test_the_command_prints_the_table_writes_the_csv_and_names_a_folder_without_weights(tmp_path, base, capsys):
    moved = save_model(tmp_path / "moved", [{"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([[0.0], [6.0]])}])
    out = tmp_path / "drift.csv"
    assert main(["drift", "--base", str(base), str(moved), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"| {moved} | 2 | 0.4 | 2 |" in printed
    assert out.read_text().splitlines()[0] == "checkpoint,distance,relative_distance,max_abs_change"

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["drift", "--base", str(base), str(empty)]) == 2
    assert "holds no *.safetensors" in capsys.readouterr().err
    assert main(["drift", "--base", str(base)]) == 2
    assert "at least one checkpoint" in capsys.readouterr().err
