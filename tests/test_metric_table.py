"""The metric table is the one list of metrics: the case metrics, the report schema follow it."""

from __future__ import annotations

from dataclasses import fields

import pytest

from segrob.metrics.case import ClassMetrics
from segrob.metrics.table import METRIC_TABLE, Metric, metric_names
from segrob.report import report_schema


def test_report_schema_requires_exactly_the_tables_metrics():
    schema = report_schema()
    clean = schema["properties"]["summary"]["properties"]["clean"]
    assert clean["required"] == list(metric_names())
    assert set(clean["properties"]) == set(metric_names())
    cell = schema["$defs"]["cell"]
    required = [key for key in cell["required"] if key in cell["properties"]
                and cell["properties"][key] == {"$ref": "#/$defs/stat"}]
    assert required == list(metric_names())
    deltas = {key.removeprefix("delta_") for key in cell["properties"] if key.startswith("delta_")}
    assert deltas == set(metric_names())


def test_class_metrics_has_a_field_per_per_class_metric_in_table_order():
    names = [f.name for f in fields(ClassMetrics) if f.name != "empty"]
    assert names == list(metric_names(per_class=True))
    assert set(metric_names(per_class=False)) == {"ece", "entropy"}


def test_table_order_and_selections():
    assert metric_names() == tuple(m.name for m in METRIC_TABLE)
    assert metric_names(gateable=True) == ("dice", "iou", "nsd", "sensitivity", "precision")
    assert [m.heading for m in METRIC_TABLE if m.unit] == ["HD95 mm", "ASSD mm", "entropy nats"]


def test_a_gateable_metric_must_be_higher_is_better():
    with pytest.raises(ValueError, match="higher-is-better"):
        Metric("hd100", "HD100", "mm", lower_is_better=True, gateable=True, per_class=True)
