"""The method registry (deltal.verl_adapter.methods) is the one list of methods: the hydra presets, the quickstart
script's accepted names and the analysis labels all agree with it, and every entry documents itself."""

import re
from pathlib import Path

from deltal.algorithm import AGGREGATORS
from deltal.analysis.tables import METHOD_LABELS
from deltal.verl_adapter.methods import METHOD_BY_LOSS_AGG_MODE, METHODS

ROOT = Path(__file__).resolve().parents[2]


def test_every_method_has_a_preset_and_every_preset_a_method():
    presets = {path.stem for path in (ROOT / "deltal" / "config" / "method").glob("*.yaml")}
    assert presets == set(METHODS)


def test_quickstart_script_accepts_exactly_the_registered_methods():
    script = (ROOT / "train_scripts" / "quickstart-cpu.sh").read_text()
    case_arm = re.search(r"^\s*([a-z_|]+)\) ;;$", script, re.MULTILINE)
    assert case_arm is not None, "quickstart-cpu.sh lost its METHOD case statement"
    assert set(case_arm.group(1).split("|")) == set(METHODS)
    usage = re.search(r"use one of ([a-z_ ]+)\"", script)
    assert usage is not None and set(usage.group(1).split()) == set(METHODS)


def test_entries_document_themselves_and_name_known_formulas():
    for name, spec in METHODS.items():
        assert spec.name == name
        assert all([spec.label, spec.paper, spec.use_when, spec.avoid_when]), name
        assert spec.aggregator in AGGREGATORS, name
    assert {spec.aggregator for spec in METHODS.values()} == set(AGGREGATORS)
    assert set(METHOD_BY_LOSS_AGG_MODE.values()) <= set(METHODS)


def test_analysis_labels_come_from_the_registry_in_registry_order():
    assert METHOD_LABELS == {name: spec.label for name, spec in METHODS.items()}


def test_the_estimators_deltal_registers_are_exactly_those_the_methods_name():
    from deltal.verl_adapter.estimator import ESTIMATORS
    from deltal.verl_adapter.registration import ESTIMATOR_NAMES

    assert set(ESTIMATORS) == {spec.estimator for spec in METHODS.values()} == set(ESTIMATOR_NAMES)
