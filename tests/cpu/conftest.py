"""Shared fixture for the CPU backend tests: one tiny model directory built once per test session."""

import pytest

from deltal.cpu.assets import build_tiny_assets


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory):
    return build_tiny_assets(tmp_path_factory.mktemp("cpu_assets") / "tiny", seed=0)
