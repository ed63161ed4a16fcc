"""verl finds deltal's estimators through the `verl.plugins` entry point: in a fresh process and inside a Ray worker.

Also: a disabled plugin is caught by ``assert_registered`` with a message saying how to fix it.
"""

import json
import os
import subprocess
import sys

import pytest

# One fresh process per plugin policy answers every question below: which heavy verl modules `import verl` loaded
# (listed before anything else is imported), which functions verl's registry holds for deltal's estimator names, and
# whether the launch check passes (it raises last, so the answers are printed either way).
PROBE = """
import json, sys
import verl
heavy = sorted(m for m in sys.modules if m.startswith(("verl.trainer.ppo.ray_trainer", "verl.trainer.ppo.v1",
    "verl.workers.engine_workers", "verl.trainer.main_ppo", "ray")))
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY as registry
found = {name: registry[name].__module__ for name in ("delta_l", "deltal_grpo") if name in registry}
print(json.dumps({"heavy_modules": heavy, "estimators": found}), flush=True)
from deltal.verl_adapter.registration import assert_registered
assert_registered()
"""


def _run(code, **env):
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300)


@pytest.fixture(scope="module")
def with_plugin():
    return _run(PROBE, VERL_USE_EXTERNAL_PLUGINS="auto")


@pytest.fixture(scope="module")
def without_plugin():
    return _run(PROBE, VERL_USE_EXTERNAL_PLUGINS="none")


def _answers(result):
    return json.loads(result.stdout.splitlines()[0])


def test_a_fresh_process_that_imports_verl_sees_deltal_estimators(with_plugin):
    assert with_plugin.returncode == 0, with_plugin.stderr
    assert _answers(with_plugin)["estimators"] == dict.fromkeys(
        ("delta_l", "deltal_grpo"), "deltal.verl_adapter.estimator"
    )


def test_estimators_are_registered_when_their_module_is_what_first_imports_verl():
    # verl then runs the plugin while the estimator module is half-loaded; the registration must still happen.
    code = (
        "import deltal.verl_adapter.estimator\n"
        "from deltal.verl_adapter.registration import assert_registered\n"
        "assert_registered()\n"
        "print('registered')\n"
    )
    result = _run(code, VERL_USE_EXTERNAL_PLUGINS="auto")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["registered"]


def test_importing_the_plugin_does_not_import_verl_trainer_modules(with_plugin, without_plugin):
    # Modules that the plugin adds beyond what `import verl` loads by itself, among verl's heavy trainer stack.
    assert _answers(with_plugin)["heavy_modules"] == _answers(without_plugin)["heavy_modules"]


def test_assert_registered_explains_a_disabled_plugin(without_plugin):
    assert _answers(without_plugin)["estimators"] == {}
    assert without_plugin.returncode != 0
    assert "did not register deltal's advantage estimators" in without_plugin.stderr
    assert "VERL_USE_EXTERNAL_PLUGINS" in without_plugin.stderr


@pytest.mark.slow
def test_a_ray_worker_process_sees_deltal_estimators(ray_tmp_dir):
    code = (
        "import ray\n"
        f"ray.init(num_cpus=1, include_dashboard=False, _temp_dir={ray_tmp_dir!r})\n"
        "@ray.remote\n"
        "def probe():\n"
        "    import os, sys\n"
        "    fresh = 'verl' not in sys.modules\n"
        "    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY\n"
        "    return os.getpid(), fresh, 'delta_l' in ADV_ESTIMATOR_REGISTRY, 'deltal_grpo' in ADV_ESTIMATOR_REGISTRY\n"
        "pid, fresh, has_delta_l, has_grpo = ray.get(probe.remote())\n"
        "import os\n"
        "print(pid != os.getpid(), fresh, has_delta_l, has_grpo)\n"
        "ray.shutdown()\n"
    )
    result = _run(code, RAY_AUTH_MODE="disabled")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "True True True True"
