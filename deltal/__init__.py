"""deltal: ΔL Normalization (VL Norm) for RL with verifiable rewards, as a plugin for verl.

Importing this package is cheap on purpose: verl loads ``deltal.verl_adapter.plugin`` in every process that
imports verl, so nothing here may import torch-heavy or trainer modules at import time.
"""

__version__ = "0.1.0"

# The verl release this project is built and tested against (also pinned in pyproject.toml).
PINNED_VERL_VERSION = "0.9.1"
