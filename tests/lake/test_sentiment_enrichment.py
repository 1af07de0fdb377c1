"""The sentiment enrichment swaps in a tenant's own registered model: the tenant with a champion is rescored by it,
the other stays on VADER, and a model's pyfunc face gives the same scores outside Parley."""

from __future__ import annotations

import shutil

import dagster as dg
import polars as pl

from core.lake import MESSAGE_SENTIMENT, Lake
from models.sentiment import LABELS
from tests.models.test_sentiment_model import tweets


def test_the_enrichment_scores_a_tenant_with_its_champion_and_the_other_with_vader(
    lakehouse,
    tmp_path,
    models_dir,
):
    from core.embeddings import ensure_model
    from core.registry import Registry
    from models.sentiment.pyfunc import ARTIFACT, PIP_REQUIREMENTS, SentimentPyfunc
    from models.sentiment.train import train_sentiment
    from models.training import register
    from pipelines.defs.enrich.assets import message_sentiment
    from pipelines.resources import LakeResource, ModelsResource

    root = tmp_path / "lake"
    shutil.copytree(lakehouse.root, root)
    own, other = lakehouse.tenants
    store = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"

    def materialize() -> dict:
        resources = {"lake": LakeResource(root=str(root)), "models": ModelsResource(mlflow_uri=store)}
        result = dg.materialize([message_sentiment], resources=resources)
        assert result.success
        (event,) = result.get_asset_materialization_events()
        return event.materialization.metadata

    assert materialize()["tenants_rebuilt"].value == 0, "no store, nothing changed: nothing to do"
    rows = [(text, str(label)) for text, label in tweets()[:240]]
    trained = train_sentiment(
        rows,
        base_encoder_dir=ensure_model(models_dir),
        folder=tmp_path / ARTIFACT,
        recipe="linear",
        numeric_labels=True,
    )
    registered = register(
        tenant_id=own,
        kind="sentiment",
        trained=trained,
        registry=Registry(store),
        python_model=SentimentPyfunc(),
        artifact=ARTIFACT,
        pip_requirements=PIP_REQUIREMENTS,
    )
    assert registered.champion
    before = pl.from_arrow(Lake(str(root)).read(MESSAGE_SENTIMENT))

    metadata = materialize()
    name = f"sentiment__{own}/1"
    assert metadata["tenant_models"].value == {own: name}
    assert metadata["tenant_ids"].value == [own], "only the tenant whose scorer changed is rescored"
    after = pl.from_arrow(Lake(str(root)).read(MESSAGE_SENTIMENT))
    mine, theirs = (after.filter(pl.col("tenant_id") == t) for t in (own, other))
    assert set(mine["scorer"]) == {name} and set(theirs["scorer"]) == {"vader"}
    assert mine.height == before.filter(pl.col("tenant_id") == own).height
    assert set(mine["label"]) <= set(LABELS) and mine["score"].abs().max() <= 1.0
    assert theirs.sort("message_id").equals(before.filter(pl.col("tenant_id") == other).sort("message_id"))
    assert materialize()["tenants_rebuilt"].value == 0, "scored by the champion already: nothing to do"

    import mlflow.pyfunc

    mlflow.set_registry_uri(store)
    mlflow.set_tracking_uri(store)
    frame = mlflow.pyfunc.load_model(f"models:/sentiment__{own}@champion").predict(["I love it", "I hate it"])
    assert list(frame.columns) == ["label", "score", "p_negative", "p_neutral", "p_positive"]
    assert frame["score"][0] > frame["score"][1]
