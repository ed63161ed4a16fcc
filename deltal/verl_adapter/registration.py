"""The launch-time check that verl registered deltal's advantage estimators.

verl loads ``deltal.verl_adapter.plugin`` (which imports ``deltal.verl_adapter.estimator``, whose import registers
the estimators) in every process that imports verl. It hides plugin import errors behind a DEBUG log, so launch
paths call :func:`assert_registered`, which turns a silent failure into an error that says what to do. This module
never imports the estimators itself: that would register them in this process and hide the failure it looks for.
"""

from __future__ import annotations

import importlib

from deltal import PINNED_VERL_VERSION
from deltal.verl_adapter.methods import METHODS

# Every estimator a method trains with (MethodSpec.estimator), in a stable order for messages.
ESTIMATOR_NAMES: tuple[str, ...] = tuple(sorted({spec.estimator for spec in METHODS.values()}))


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
    missing = [name for name in ESTIMATOR_NAMES if name not in ADV_ESTIMATOR_REGISTRY]
    if missing:
        raise RuntimeError(
            f"verl did not register deltal's advantage estimators {missing}. verl loads plugins from the "
            "'verl.plugins' entry point and hides their import errors. Fix: install deltal into this environment "
            "(`pip install -e .` from the deltal checkout), and leave VERL_USE_EXTERNAL_PLUGINS unset, 'auto', or a "
            "list that includes 'deltal'. Import error seen when loading deltal.verl_adapter.plugin: "
            + _plugin_import_error()
        )
