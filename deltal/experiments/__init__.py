"""Experiments that run the real pipeline end to end (``python -m deltal.experiments.compare``)."""
