"""The MLflow registry on a real local tracking store: per-tenant names, runs with what they were trained on, and a
champion alias that only a better challenger moves."""

from __future__ import annotations

import json

import pytest

from core.registry import Registry, fingerprint, model_name


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    return Registry(f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}")


def log(registry, tenant_id, accuracy, tmp_path, label="a"):
    import mlflow.pyfunc

    class Model(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return [label] * len(model_input)

    weights = tmp_path / f"weights-{accuracy}.json"
    weights.write_text(json.dumps({"label": label}))
    return registry.log_run(
        kind="intent",
        tenant_id=tenant_id,
        params={"C": 1.0},
        metrics={"accuracy": accuracy},
        python_model=Model(),
        artifacts={"weights": str(weights)},
        pip_requirements=["numpy==2.4.6"],
        data_fingerprint=fingerprint([("hi", label)]),
        documents={"confusion_matrix.json": {"labels": [label], "matrix": [[1]]}},
    )


def test_a_challenger_becomes_champion_only_when_it_beats_the_champion_by_the_margin(registry, tmp_path):
    first = log(registry, "t_a", 0.80, tmp_path)
    assert registry.promote_if_better(kind="intent", tenant_id="t_a", version=first.version, metric="accuracy").promoted
    worse = log(registry, "t_a", 0.79, tmp_path)
    barely = log(registry, "t_a", 0.803, tmp_path)
    better = log(registry, "t_a", 0.85, tmp_path)
    decisions = [
        registry.promote_if_better(kind="intent", tenant_id="t_a", version=v.version, metric="accuracy")
        for v in (worse, barely, better)
    ]
    assert [d.promoted for d in decisions] == [False, False, True]
    assert "does not beat" in decisions[0].reason and decisions[0].champion == first.version
    assert registry.champion(kind="intent", tenant_id="t_a").version == better.version
    listed = registry.versions(kind="intent", tenant_id="t_a")
    assert [v.version for v in listed if v.champion] == [better.version]
    assert {v.metrics["accuracy"] for v in listed} == {0.80, 0.79, 0.803, 0.85}
    assert all(v.tags["data_fingerprint"] == fingerprint([("hi", "a")]) for v in listed)


def test_two_tenants_never_see_each_others_models(registry, tmp_path):
    mine = log(registry, "t_one", 0.9, tmp_path, label="one")
    registry.promote_if_better(kind="intent", tenant_id="t_one", version=mine.version, metric="accuracy")
    assert registry.champion(kind="intent", tenant_id="t_two") is None
    assert registry.versions(kind="intent", tenant_id="t_two") == []
    theirs = log(registry, "t_two", 0.5, tmp_path, label="two")
    assert registry.promote_if_better(
        kind="intent", tenant_id="t_two", version=theirs.version, metric="accuracy"
    ).promoted
    assert registry.champion(kind="intent", tenant_id="t_one").version == mine.version
    folder = registry.download(kind="intent", tenant_id="t_two", version=theirs.version, into=tmp_path / "dl")
    assert json.loads((folder / "artifacts" / "weights-0.5.json").read_text()) == {"label": "two"}
    assert model_name(kind="intent", tenant_id="t_two") == "intent__t_two"
    with pytest.raises(ValueError):
        model_name(kind="in__tent", tenant_id="t")


def test_the_fingerprint_ignores_order_and_sees_every_change():
    rows = [("hello", "greet"), ("bye", "leave")]
    assert fingerprint(rows) == fingerprint(list(reversed(rows)))
    assert fingerprint(rows) != fingerprint([("hello", "greet"), ("bye", "greet")])


def test_a_local_store_keeps_artifacts_beside_its_database_whatever_the_working_directory(tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    store = tmp_path / "store"
    local = Registry(f"sqlite:///{store / 'mlflow.db'}")
    logged = log(local, "t_art", 0.7, tmp_path)
    assert list(elsewhere.iterdir()) == [], "nothing lands in the directory the process started in"
    assert list((store / "artifacts" / "intent__t_art").rglob("weights-0.7.json"))
    assert local.download(kind="intent", tenant_id="t_art", version=logged.version, into=tmp_path / "dl").exists()
