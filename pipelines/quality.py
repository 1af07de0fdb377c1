"""Data quality with Great Expectations (GX Core): one suite per check, validated over a pandas frame.

GX is imported on first use (about 3 s): definitions load without it, and only runs that check data pay for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import polars as pl

_names = itertools.count()


@dataclass(frozen=True)
class Validation:
    passed: bool
    rows: int
    failures: list[dict[str, Any]]  # one per failed expectation: which, and what it saw


@cache
def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def expectations() -> Any:
    """The `great_expectations.expectations` module (imported here, not at module load)."""
    import great_expectations.expectations as expectations_module

    return expectations_module


def validate(frame: pl.DataFrame, build: Callable[[Any], Sequence[Any]], *, name: str) -> Validation:
    """Run the expectations `build(gx.expectations)` returns against `frame`."""
    import great_expectations as gx

    context = _context()
    unique = f"{name}_{next(_names)}"
    batch = (
        context.data_sources.add_pandas(unique).add_dataframe_asset(unique).add_batch_definition_whole_dataframe(unique)
    )
    suite = context.suites.add(gx.ExpectationSuite(name=unique))
    for expectation in build(expectations()):
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=unique, data=batch, suite=suite))
    # GX compares plain values: timestamps go in as naive UTC (pandas deprecates tz-aware .values).
    naive = frame.with_columns(pl.col(pl.Datetime).dt.replace_time_zone(None))
    result = definition.run(batch_parameters={"dataframe": naive.to_pandas()})
    failures = [
        {
            "expectation": outcome.expectation_config.type,
            "column": outcome.expectation_config.kwargs.get("column"),
            "unexpected_count": outcome.result.get("unexpected_count"),
            "observed": _plain(outcome.result.get("observed_value")),
            "examples": [_plain(v) for v in (outcome.result.get("partial_unexpected_list") or [])[:5]],
        }
        for outcome in result.results
        if not outcome.success
    ]
    context.data_sources.delete(unique)
    return Validation(passed=bool(result.success), rows=frame.height, failures=failures)


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)
