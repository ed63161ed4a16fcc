"""A run on several nodes needs a Ray cluster to join, and preflight probes every node of it: deltal and verl must
import there with the driver's versions, and flash-attn's kernels too when the actor uses them.

The per-node probe runs for real on a local one-node Ray cluster, with a runtime env whose PYTHONPATH hides deltal
or fakes another version of it; this machine has no flash-attn, which the attention probe must report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deltal.train import preflight
from deltal.train.preflight import PreflightError, run_preflight

REPO = Path(__file__).resolve().parents[2]


def test_several_nodes_need_a_ray_cluster_to_join(countdown_config, registered, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    countdown_config.trainer.nnodes = 2
    with pytest.raises(PreflightError, match="export RAY_ADDRESS"):
        run_preflight(countdown_config)
    probed = []
    monkeypatch.setattr(preflight, "check_ray_nodes", lambda config: probed.append(config) or [])
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    run_preflight(countdown_config)
    assert len(probed) == 1, "a run on several nodes probes every node's environment"


RAY_PROBE_SCRIPT = """
import json, sys, ray
from omegaconf import OmegaConf
from deltal.train.preflight import node_checks
ray.init(num_cpus=1, include_dashboard=False, _temp_dir=sys.argv[1], logging_level="ERROR")
expected = node_checks.driver_versions()
hidden, other_version = sys.argv[2], sys.argv[3]
results = {
    "same_env": node_checks.probe_ray_nodes(expected, nnodes=1),
    "hidden": node_checks.probe_ray_nodes(expected, nnodes=1, runtime_env={"env_vars": {"PYTHONPATH": hidden}}),
    "other_version": node_checks.probe_ray_nodes(
        expected, nnodes=1, runtime_env={"env_vars": {"PYTHONPATH": other_version}}
    ),
    "too_few_nodes": node_checks.probe_ray_nodes(expected, nnodes=2),
    # The entry point: a two-node CUDA run with verl's default attention (flash-attn), whose runtime env (as verl's
    # config writes it) gives the node another deltal; this machine has no flash-attn.
    "from_config": node_checks.check_ray_nodes(OmegaConf.create({
        "trainer": {"nnodes": 2, "device": "cuda"},
        "ray_kwargs": {"ray_init": {"address": "auto", "runtime_env": {
            "py_executable": None, "env_vars": {"PYTHONPATH": other_version},
        }}},
    })),
}
ray.shutdown()
print(json.dumps(results))
"""


@pytest.mark.slow  # one local Ray cluster and a few worker processes that import verl: about 30 s on 2 cores
def test_ray_node_probe_finds_a_node_without_deltal_another_version_or_no_flash_attn(tmp_path, ray_tmp_dir):
    # A node "without deltal": a package of that name first on the path, which fails to import.
    hidden = tmp_path / "hidden"
    (hidden / "deltal").mkdir(parents=True)
    (hidden / "deltal" / "__init__.py").write_text("raise ImportError('deltal is not installed on this node')\n")
    # A node with another deltal: the real package, but metadata that says 0.0.1 found first.
    other = tmp_path / "other"
    (other / "deltal-0.0.1.dist-info").mkdir(parents=True)
    (other / "deltal-0.0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: deltal\nVersion: 0.0.1\n")
    result = subprocess.run(
        # The other deltal is this checkout's code behind metadata found first.
        [sys.executable, "-c", RAY_PROBE_SCRIPT, ray_tmp_dir, str(hidden), os.pathsep.join([str(other), str(REPO)])],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        # Ray puts the driver's working folder first on its workers' path: keep the checkout out of it.
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["same_env"] == []
    (problem,) = found["hidden"]
    assert "cannot import deltal (ImportError: deltal is not installed on this node)" in problem
    assert "every node needs the same environment with deltal installed" in problem
    (problem,) = found["other_version"]
    assert "has deltal 0.0.1 but the driver has" in problem
    (problem,) = found["too_few_nodes"]
    assert "trainer.nnodes=2 but the Ray cluster has 1 node(s)" in problem
    too_few, other_node, no_flash_attn = found["from_config"]
    assert "trainer.nnodes=2" in too_few and "has deltal 0.0.1" in other_node
    assert "the actor uses flash_attention_2 but there flash-attn is not installed" in no_flash_attn
    assert "ATTN_IMPL=sdpa" in no_flash_attn
