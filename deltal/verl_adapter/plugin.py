"""verl plugin entry point (group ``verl.plugins``, name ``deltal``).

verl imports this module at the end of ``verl/__init__`` in every process that imports verl: the
driver, the TaskRunner and every Ray worker. It registers deltal's advantage estimators (importing
``deltal.verl_adapter.estimator`` registers them) and, only when ``VERL_PLATFORM=cpu`` is set, deltal's CPU
backend (platform + transformers rollout).

verl swallows plugin import errors (logged at DEBUG only), so every deltal launch path checks
``deltal.verl_adapter.registration.assert_registered()`` before training starts.
"""

import os

import deltal.config  # noqa: F401 - registers ${deltal_file:...}, which verl's TaskRunner resolves in the config
import deltal.verl_adapter.estimator  # noqa: F401 - registers deltal's advantage estimators with verl

if os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu":
    from deltal.cpu.backend import register_cpu_backend

    register_cpu_backend()
