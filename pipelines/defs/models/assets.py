"""Per-tenant intent models: trained on the tenant's labelled examples in the lake, evaluated, and promoted.

    silver/intent_examples → models/intent (train, log a challenger to MLflow; blocking evaluation check)
                           → models/intent_champion (move the `champion` alias only if the challenger is better)

Both assets are partitioned by tenant. Serving picks a new champion up within `champion_refresh_s`, without a restart.
A run started for a training job (tag parley/training_job) reports to that job, which the API shows.
"""

import tempfile
from pathlib import Path

import dagster as dg
import polars as pl
from psycopg.types.json import Jsonb

from core import intents
from core.lake import SILVER_INTENT_EXAMPLES
from pipelines.keys import INTENT_CHAMPION, INTENT_EXAMPLES, INTENT_MODEL
from pipelines.resources import LakeResource, ModelsResource, PostgresResource

TENANTS = dg.DynamicPartitionsDefinition(name="tenants")
TRAINING_JOB_TAG = "parley/training_job"
EVALUATION = "evaluation"
# A challenger whose held-out macro-F1 is below this is broken (mislabelled or contradictory examples), whatever the
# champion: the check fails, the run fails, nothing is promoted, and the job says why.
MIN_MACRO_F1 = 0.5


def training_rows(lake, *, tenant_id: str) -> list[tuple[str, str]]:
    """The tenant's labelled examples in the lake, oldest first."""
    data = lake.read(SILVER_INTENT_EXAMPLES, tenant_ids=[tenant_id], columns=["example_id", "text", "intent"])
    if data is None:
        return []
    frame = pl.from_arrow(data).sort("example_id")
    return list(zip(frame["text"].to_list(), frame["intent"].to_list(), strict=True))


def _job_id(context) -> str | None:
    return context.run.tags.get(TRAINING_JOB_TAG)


def _report(postgres: PostgresResource, sql: str, params) -> None:
    with postgres.connect() as conn:
        conn.execute(sql, params)


def _fail(postgres: PostgresResource, job_id: str, detail: str) -> None:
    _report(postgres, intents.FINISH, intents.finish_params(job_id=job_id, succeeded=False, detail=detail))


@dg.asset(
    key=INTENT_MODEL,
    deps=[INTENT_EXAMPLES],
    partitions_def=TENANTS,
    group_name="models",
    kinds={"mlflow", "onnx"},
    description="The tenant's intent classifier, trained on its labelled examples in the lake and logged to MLflow "
    "as a new version of intent__<tenant> (a challenger: promotion is the next asset's decision).",
    check_specs=[
        dg.AssetCheckSpec(
            EVALUATION,
            asset=INTENT_MODEL,
            blocking=True,
            description=f"Held-out evaluation: macro-F1 at least {MIN_MACRO_F1}, every figure a number.",
        )
    ],
)
def intent_model(
    context: dg.AssetExecutionContext, lake: LakeResource, models: ModelsResource, postgres: PostgresResource
):
    from models.intent.pyfunc import ARTIFACT, PIP_REQUIREMENTS, IntentPyfunc
    from models.intent.train import train_intent
    from models.training import TrainingDataError, register

    tenant_id = context.partition_key
    job_id = _job_id(context)
    if job_id:
        _report(postgres, intents.START, {"id": job_id})
    rows = training_rows(lake.lake(), tenant_id=tenant_id)
    oos_label = intents.OOS_INTENT if any(label == intents.OOS_INTENT for _, label in rows) else None
    registry = models.registry()
    try:
        with tempfile.TemporaryDirectory(prefix="parley-intent-") as scratch:
            trained = train_intent(
                rows,
                base_encoder_dir=models.base_encoder_dir(),
                folder=Path(scratch) / ARTIFACT,
                oos_label=oos_label,
                recipe=models.intent_recipe,
            )
            logged = register(
                tenant_id=tenant_id,
                kind="intent",
                trained=trained,
                registry=registry,
                python_model=IntentPyfunc(),
                artifact=ARTIFACT,
                pip_requirements=PIP_REQUIREMENTS,
                promote=False,
            )
    except TrainingDataError as exc:
        if job_id:
            _fail(postgres, job_id, f"cannot train: {exc}")
        raise dg.Failure(description=f"tenant {tenant_id}: cannot train: {exc}") from None
    metrics = trained.metrics
    passed = metrics.get("macro_f1", 0.0) >= MIN_MACRO_F1 and all(v == v for v in metrics.values())  # NaN != NaN
    if job_id:
        _report(
            postgres,
            intents.LOGGED,
            {"id": job_id, "run_id": logged.run_id, "model_uri": logged.model_uri, "metrics": Jsonb(metrics)},
        )
    champion = registry.champion(kind="intent", tenant_id=tenant_id)
    evaluation = {
        "macro_f1": metrics.get("macro_f1"),
        "accuracy": metrics.get("accuracy"),
        "floor": MIN_MACRO_F1,
        "champion_version": champion.version if champion else None,
        "champion_macro_f1": champion.metrics.get("macro_f1") if champion else None,
    }
    yield dg.Output(
        {"version": logged.version, "model_uri": logged.model_uri, "run_id": logged.run_id, "metrics": metrics},
        metadata={
            "version": logged.version,
            "model_uri": logged.model_uri,
            "run_id": logged.run_id,
            "rows": len(rows),
            "labels": len({label for _, label in rows}),
            "oos_label": oos_label or "",
            "recipe": str(trained.params.get("recipe")),
            "metrics": dg.MetadataValue.json(metrics),
        },
    )
    why_not = None if passed else f"held-out macro-F1 {metrics.get('macro_f1', 0):.3f} is below {MIN_MACRO_F1}"
    if why_not and job_id:
        _fail(postgres, job_id, f"{logged.model_uri} failed its evaluation: {why_not}; not promoted")
    yield dg.AssetCheckResult(
        check_name=EVALUATION,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={key: value for key, value in evaluation.items() if value is not None},
        description=why_not,
    )


@dg.asset(
    key=INTENT_CHAMPION,
    ins={"intent_model": dg.AssetIn(key=INTENT_MODEL)},
    partitions_def=TENANTS,
    group_name="models",
    kinds={"mlflow"},
    description="Moves the champion alias of intent__<tenant> to the new version only if its held-out macro-F1 "
    "beats the champion's by the registry's margin; serving follows the alias.",
)
def intent_champion(
    context: dg.AssetExecutionContext, intent_model: dict, models: ModelsResource, postgres: PostgresResource
) -> dg.MaterializeResult:
    from models.training import PROMOTION_METRIC

    tenant_id = context.partition_key
    promotion = models.registry().promote_if_better(
        kind="intent", tenant_id=tenant_id, version=intent_model["version"], metric=PROMOTION_METRIC["intent"]
    )
    context.log.info("tenant %s, version %s: %s", tenant_id, intent_model["version"], promotion.reason)
    job_id = _job_id(context)
    if job_id:
        _report(
            postgres,
            intents.FINISH,
            intents.finish_params(
                job_id=job_id,
                succeeded=True,
                run_id=intent_model["run_id"],
                model_uri=intent_model["model_uri"],
                metrics=intent_model["metrics"],
                promoted=promotion.promoted,
                detail=promotion.reason,
            ),
        )
    return dg.MaterializeResult(
        metadata={
            "promoted": promotion.promoted,
            "reason": promotion.reason,
            "champion_version": promotion.champion if promotion.champion is not None else -1,
            "challenger_version": intent_model["version"],
        }
    )
