"""The lab's custom Agent check (roles/datadog/files/checks.d/custom_random.py) under the stub
aggregator of datadog_checks_dev, with the real datadog_checks_base."""
import importlib.util
import random
import sys
from pathlib import Path

import pytest

sys.dont_write_bytecode = True  # keep __pycache__ out of the role's files/

CHECK_FILE = Path(__file__).resolve().parents[2] / "roles/datadog/files/checks.d/custom_random.py"


@pytest.fixture(scope="module")
def check_module():
    # The agent imports a checks.d file as a module named after the check.
    spec = importlib.util.spec_from_file_location("custom_random", CHECK_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(check_module, dd_run_check, instance):
    check = check_module.RandomCheck("custom_random", {}, [instance])
    dd_run_check(check)


def test_one_gauge_in_range_tagged_custom(check_module, aggregator, dd_run_check):
    run(check_module, dd_run_check, {"min_collection_interval": 45})
    aggregator.assert_metric("my_metric", count=1, metric_type=aggregator.GAUGE, tags=["type:custom"])
    aggregator.assert_all_metrics_covered()
    (metric,) = aggregator.metrics("my_metric")
    assert 1 <= metric.value <= 1000


def test_draws_from_1_to_1000_inclusive(check_module, aggregator, dd_run_check, monkeypatch):
    calls = []

    def fake_randint(low, high):
        calls.append((low, high))
        return high

    monkeypatch.setattr(random, "randint", fake_randint)
    run(check_module, dd_run_check, {})
    assert calls == [(1, 1000)]
    aggregator.assert_metric("my_metric", value=1000, count=1)


def test_instance_tags_are_passed_through(check_module, aggregator, dd_run_check):
    run(check_module, dd_run_check, {"tags": ["team:web", "role:demo"]})
    aggregator.assert_metric("my_metric", count=1, tags=["type:custom", "team:web", "role:demo"])


def test_generic_tags_pass_as_the_agent_accepts_them(check_module, aggregator, dd_run_check, monkeypatch):
    # The stub rejects env/host/service/version tags unless told; the real agent takes them.
    monkeypatch.setenv("DDEV_SKIP_GENERIC_TAGS_CHECK", "1")
    run(check_module, dd_run_check, {"tags": ["env:test"]})
    aggregator.assert_metric("my_metric", count=1, tags=["type:custom", "env:test"])


def test_version_is_reported(check_module):
    assert check_module.__version__ == "1.0.0"
