"""Evaluation metrics, paper tables, training curves and the gradient-variance lab.

Command lines: ``python -m deltal.analysis export|table|curves ...`` and
``python -m deltal.analysis.variance synthetic|model ...``; see deltal/analysis/README.md.
"""
