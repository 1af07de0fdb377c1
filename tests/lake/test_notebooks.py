"""The analysts' notebooks run offline, top to bottom, against the shared lakehouse, and show one tenant only."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KPIS = NOTEBOOKS / "analyst_kpis.ipynb"


def run(path: Path, *, env: dict[str, str], cwd: Path, monkeypatch) -> nbformat.NotebookNode:
    """Execute a copy of the notebook in a fresh kernel whose environment holds only these PARLEY_ variables."""
    for name in [name for name in os.environ if name.startswith("PARLEY_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return notebook


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", output
            if output.output_type == "stream":
                parts.append(output.text)
            else:
                parts.extend(str(value) for value in output.get("data", {}).values())
    return "\n".join(parts)


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda path: path.name)
def test_committed_notebooks_carry_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear the outputs"


def test_analyst_kpis_shows_one_tenants_figures(lakehouse, monkeypatch, tmp_path):
    own, other = lakehouse.tenants
    started = time.perf_counter()
    notebook = run(
        KPIS,
        env={"PARLEY_LAKE_URI": str(lakehouse.root), "PARLEY_TENANT": own, "PARLEY_DATA_DIR": str(tmp_path)},
        cwd=tmp_path,
        monkeypatch=monkeypatch,
    )
    print(f"\nanalyst_kpis.ipynb ran in {time.perf_counter() - started:.1f} s")
    text = outputs_text(notebook)

    daily = lakehouse.lake.read("gold/tenant_daily", tenant_ids=[own]).to_pylist()
    assert daily, "the fixture lake has KPIs for the tenant"
    assert f"{own}: {len(daily)} days of KPIs, {sum(row['conversations'] for row in daily)} conversations" in text

    scored = lakehouse.lake.read("enriched/message_sentiment", tenant_ids=[own]).to_pylist()
    days = len({row["date"] for row in scored})
    assert f"{own}: sentiment on {days} days, {len({row['message_id'] for row in scored})} customer messages" in text
    gold_scored = sum(row["sentiment_negative"] + row["sentiment_neutral"] + row["sentiment_positive"] for row in daily)
    assert f"check: gold_tenant_daily counts {gold_scored} scored messages, this table {gold_scored}" in text

    messages = lakehouse.lake.read("silver/messages", tenant_ids=[own]).to_pylist()
    unanswered = Counter(row["text"] for row in messages if row["role"] == "user" and row["answered"] is False)
    assert f"{own}: {sum(unanswered.values())} unanswered customer messages" in text
    top_count = max(unanswered.values())
    assert any(question[:40] in text for question, count in unanswered.items() if count == top_count)

    assert other not in text  # not an id, not a figure's label: the other tenant never shows up


def test_analyst_kpis_refuses_to_run_without_a_tenant(lakehouse, monkeypatch, tmp_path):
    with pytest.raises(CellExecutionError, match="PARLEY_TENANT"):
        run(
            KPIS,
            env={"PARLEY_LAKE_URI": str(lakehouse.root), "PARLEY_DATA_DIR": str(tmp_path)},
            cwd=tmp_path,
            monkeypatch=monkeypatch,
        )
