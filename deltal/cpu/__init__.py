"""deltal's CPU backend for verl: platform shim, transformers rollout, tiny local assets and warm start.

Nothing here is imported unless ``VERL_PLATFORM=cpu`` (see ``deltal.verl_adapter.plugin``) or a CPU tool asks for it.
"""
