"""deltal's hydra configs: ``deltal_trainer.yaml`` with its ``method/`` and ``backend/`` groups.

Importing this package registers the ``${deltal_file:<path>}`` resolver: the absolute path of a file shipped inside
the deltal package. Some verl options take a file path and look for a relative one in the working directory or in
verl's own folder, neither of which holds deltal's files (``rollout.router_config_path`` in ``backend/cpu.yaml``).
Hydra imports this package to read the configs in the driver; deltal's verl plugin imports it in every process that
imports verl, among them verl's TaskRunner, which resolves the config it is sent.
"""

from importlib.resources import files

from omegaconf import OmegaConf

PACKAGE_FILE_RESOLVER = "deltal_file"


def package_file(relative_path: str) -> str:
    """The absolute path of ``relative_path`` inside the installed deltal package; ValueError if there is none."""
    path = files("deltal").joinpath(relative_path)
    if not path.is_file():
        raise ValueError(
            f"${{{PACKAGE_FILE_RESOLVER}:{relative_path}}}: the deltal package has no file {relative_path}. Name a "
            "file under deltal/ (e.g. cpu/router.yaml), or reinstall deltal (bash setup.sh) if one is missing."
        )
    return str(path)


if not OmegaConf.has_resolver(PACKAGE_FILE_RESOLVER):
    OmegaConf.register_new_resolver(PACKAGE_FILE_RESOLVER, package_file)
