"""Registration of deltal's advantage estimators in verl's registry, and the launch-time check.

verl loads ``deltal.verl_adapter.plugin`` (which calls :func:`register_estimators`) in every process that imports
verl. It hides plugin import errors behind a DEBUG log, so launch paths call :func:`assert_registered`,
which turns a silent failure into an error that says what to do.
"""

from __future__ import annotations

import importlib
import logging

from deltal import PINNED_VERL_VERSION

logger = logging.getLogger(__name__)

# verl estimator name -> function name in deltal.verl_adapter.estimator
ESTIMATORS: dict[str, str] = {
    "delta_l": "compute_delta_l_advantage",
    "deltal_grpo": "compute_deltal_grpo_advantage",
}


def register_estimators() -> None:
    """Register every deltal estimator once per process (safe to call repeatedly).

    Only ``verl.trainer.ppo.core_algos`` is imported: it needs nothing that verl binds after its plugin
    loop, so this is safe while ``verl/__init__`` is still running.
    """
    from verl.trainer.ppo import core_algos

    from deltal.verl_adapter import estimator

    for name, func_name in ESTIMATORS.items():
        fn = getattr(estimator, func_name)
        existing = core_algos.ADV_ESTIMATOR_REGISTRY.get(name)
        if existing is None:
            core_algos.register_adv_est(name)(fn)
        elif (existing.__module__, existing.__qualname__) != (fn.__module__, fn.__qualname__):
            owner = f"{existing.__module__}.{existing.__qualname__}"
            raise RuntimeError(
                f"verl already has an advantage estimator named {name!r} ({owner}); deltal cannot register its own."
                " Uninstall the other plugin or disable it with "
                "VERL_USE_EXTERNAL_PLUGINS=deltal."
            )


def _plugin_import_error() -> str:
    """Import the plugin directly to recover the exception that verl logged only at DEBUG."""
    try:
        importlib.import_module("deltal.verl_adapter.plugin")
    except Exception as exc:  # noqa: BLE001 - reported to the user verbatim, not swallowed
        return f"{type(exc).__name__}: {exc}"
    return "none (importing deltal.verl_adapter.plugin directly works; verl may have skipped it)"


def assert_registered() -> None:
    """Raise RuntimeError unless verl is the pinned version and loaded deltal's estimators via its plugin."""
    import verl
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY

    if verl.__version__ != PINNED_VERL_VERSION:
        raise RuntimeError(
            f"deltal is built for verl=={PINNED_VERL_VERSION} but verl=={verl.__version__} is installed. "
            f"Run `pip install 'verl[verl-core]=={PINNED_VERL_VERSION}'` (or `bash setup.sh`) in this environment."
        )
    missing = [name for name in ESTIMATORS if name not in ADV_ESTIMATOR_REGISTRY]
    if missing:
        raise RuntimeError(
            f"verl did not register deltal's advantage estimators {missing}. verl loads plugins from the "
            "'verl.plugins' entry point and hides their import errors. Fix: install deltal into this environment "
            "(`pip install -e .` from the deltal checkout), and leave VERL_USE_EXTERNAL_PLUGINS unset, 'auto', or a "
            "list that includes 'deltal'. Import error seen when loading deltal.verl_adapter.plugin: "
            + _plugin_import_error()
        )
