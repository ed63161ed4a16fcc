"""The GPU requirement sets setup.sh installs stay installable, checked on CPU without installing anything.

The CUDA 13.0 line (requirements.txt, all from PyPI) is resolved by uv in dry-run mode (`uv pip compile`) for Python
3.12 on Linux x86_64 with the glibc setup.sh names as the floor of a build-free install, from wheels alone, together
with deltal's own dependencies (and the math server's set apart), so a pin that stops resolving, or starts to need a
build, fails CI; it skips when PyPI cannot be reached. The CUDA 12.9 line's builds live on torch's and vLLM's own
indexes, which CI cannot reach: its file must name the same versions as requirements.txt, as the +cu129 builds, from
the indexes that carry them (docs/gpu-setup.md names the source of each).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)$")
# The packages whose CUDA 12.9 builds come from their projects' own indexes.
CU129_BUILDS = ("torch", "torchvision", "torchaudio", "vllm")
PYPI = "https://pypi.org/simple"


def pinned(lines: list[str]) -> dict[str, str]:
    """normalized name -> version of every `name==version` line (an included file is not followed)."""
    found = {}
    for line in lines:
        match = PIN.match(line.strip())
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


def pins(path: Path) -> dict[str, str]:
    return pinned(path.read_text().splitlines())


def test_cuda_12_9_line_pins_the_cu129_builds_of_the_same_versions_from_their_projects_indexes():
    base, cu129 = pins(REPO / "requirements.txt"), pins(REPO / "requirements-cu129.txt")
    assert set(cu129) == set(CU129_BUILDS)
    for name, version in cu129.items():
        assert version == f"{base[name]}+cu129", f"{name}: {version} here, {base[name]} in requirements.txt"
    lines = (REPO / "requirements-cu129.txt").read_text().splitlines()
    assert "-r requirements.txt" in lines
    indexes = [line.split()[1] for line in lines if line.startswith("--extra-index-url")]
    assert indexes == ["https://download.pytorch.org/whl/cu129", f"https://wheels.vllm.ai/{base['vllm']}/cu129"]


@pytest.fixture(scope="module")
def uv_compile(tmp_path_factory):
    """compile(*inputs_and_options, platform=...) -> the pins uv resolves for CPython 3.12 on ``platform`` from PyPI
    alone."""
    try:
        from uv import find_uv_bin
    except ImportError:
        pytest.skip("uv is not installed (it is in deltal's test extra: pip install -e .[test])")
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError as exc:
        pytest.skip(f"PyPI is not reachable from here ({exc})")
    cache = tmp_path_factory.mktemp("uv-cache")
    # uv's own settings from the environment could add indexes or change the target: none of them here.
    env = {key: value for key, value in os.environ.items() if not key.startswith("UV_")}

    def compile_(*args: str, platform: str) -> dict[str, str]:
        command = [find_uv_bin(), "pip", "compile", *args, "--python-platform", platform]
        command += ["--python-version", "3.12", "--index-url", PYPI, "--no-header", "--no-annotate"]
        command += ["--cache-dir", str(cache), "--quiet"]
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        if result.returncode != 0 and "No solution found" not in result.stderr and "network" in result.stderr.lower():
            pytest.skip(f"PyPI went away during the resolution: {result.stderr[-500:]}")
        assert result.returncode == 0, result.stderr[-4000:]
        return pinned(result.stdout.splitlines())

    return compile_


def wheel_floor() -> str:
    """The manylinux platform of the glibc from which setup.sh says the stack installs from wheels alone."""
    glibc = re.search(r"^MIN_GLIBC_WHEELS=(\S+)$", (REPO / "setup.sh").read_text(), re.MULTILINE).group(1)
    return f"x86_64-manylinux_{glibc.replace('.', '_')}"


@pytest.mark.network  # about 30 s on 2 cores with a cold cache
def test_cuda_13_line_resolves_on_pypi_from_wheels_alone_with_deltal_and_only_cuda_13_libraries(uv_compile):
    # Wheels only: nothing would compile at install. antlr4-python3-runtime 4.9.3 (hydra's) exists only as a source
    # archive, of pure Python. Older glibcs than setup.sh's floor lack a wheel for vLLM's llguidance (setup.sh says so).
    resolved = uv_compile(
        "requirements.txt",
        "pyproject.toml",
        "--extra",
        "test",
        "--only-binary",
        ":all:",
        "--no-binary",
        "antlr4-python3-runtime",
        platform=wheel_floor(),
    )
    for name, version in pins(REPO / "requirements.txt").items():
        assert resolved[name] == version, f"{name} resolved to {resolved.get(name)}, pinned {version}"
    # PyPI's torch 2.11 is the CUDA 13.0 build: its CUDA libraries are the cu13 ones, and nothing pulls a cu12 one.
    assert "nvidia-cudnn-cu13" in resolved and "nvidia-nccl-cu13" in resolved
    assert not [name for name in resolved if name.endswith("-cu12")]


@pytest.mark.network
def test_math_server_set_resolves_on_pypi(uv_compile):
    resolved = uv_compile("server/math/requirements.txt", platform=wheel_floor())
    for name, version in pins(REPO / "server" / "math" / "requirements.txt").items():
        assert resolved[name] == version
