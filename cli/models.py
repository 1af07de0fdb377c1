"""`parley models ...`: train and evaluate per-tenant models from files, printing JSON (for ML engineers).

    parley models train intent --train FILE.csv [--tenant ID] [--text-col text] [--label-col label] [--oos-label oos]
        [--recipe auto|frozen|finetune] [--seed 0]
    parley models evaluate intent --model URI --test FILE.csv [...]

A trained model is logged to the registry (PARLEY_MLFLOW_URI) as `intent__<tenant>` and becomes the champion only
if it beats the current one on its held-out rows. `--model` takes a registry URI (models:/intent__t/3,
models:/intent__t@champion) or a model folder. Bad files fail with one line and exit code 1, before anything is logged.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

models_app = typer.Typer(no_args_is_help=True, help="Train and evaluate per-tenant models (prints JSON).")
train_app = typer.Typer(no_args_is_help=True, help="Train a model from a labelled file.")
evaluate_app = typer.Typer(no_args_is_help=True, help="Evaluate a model on a labelled file.")
models_app.add_typer(train_app, name="train")
models_app.add_typer(evaluate_app, name="evaluate")

DEFAULT_TENANT = "default"

TextCol = Annotated[str, typer.Option("--text-col", help="Column holding the text")]
LabelCol = Annotated[str, typer.Option("--label-col", help="Column holding the label")]
OosLabel = Annotated[str | None, typer.Option("--oos-label", help="The label that means out of scope")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"parley: {message}", err=True)
    return typer.Exit(1)


def _settings():
    from core.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(f"parley: {exc}", err=True)
        raise typer.Exit(2) from None


def _print(value) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


@train_app.command("intent")
def train_intent(
    train: Annotated[Path, typer.Option("--train", help="CSV of labelled examples")],
    tenant: Annotated[
        str, typer.Option("--tenant", help="Whose model (registered as intent__<tenant>)")
    ] = DEFAULT_TENANT,
    text_col: TextCol = "text",
    label_col: LabelCol = "label",
    oos_label: OosLabel = None,
    recipe: Annotated[
        str,
        typer.Option(
            "--recipe",
            help="frozen: the stock encoder and a linear head (seconds); finetune: fine-tune the encoder first "
            "(minutes); auto: fine-tune when there are enough intents and examples (models/intent/train.py)",
        ),
    ] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the held-out split and the fine-tuning")] = 0,
) -> None:
    """Train an intent classifier; prints {run_id, model_uri, metrics, champion}."""
    from core.embeddings import ensure_model
    from core.registry import Registry
    from models.intent.pyfunc import ARTIFACT, PIP_REQUIREMENTS, IntentPyfunc
    from models.intent.train import RECIPES, train_intent
    from models.training import TrainingDataError, read_rows, register

    if recipe not in RECIPES:
        raise _fail(f"--recipe {recipe}: one of {', '.join(RECIPES)}")
    settings = _settings()
    try:
        rows = read_rows(train, text_col=text_col, label_col=label_col)
        with tempfile.TemporaryDirectory(prefix="parley-intent-") as scratch:
            trained = train_intent(
                rows,
                base_encoder_dir=ensure_model(settings.models_location),
                folder=Path(scratch) / ARTIFACT,
                oos_label=oos_label,
                seed=seed,
                recipe=recipe,
            )
            registered = register(
                tenant_id=tenant,
                kind="intent",
                trained=trained,
                registry=Registry(settings.mlflow_location),
                python_model=IntentPyfunc(),
                artifact=ARTIFACT,
                pip_requirements=PIP_REQUIREMENTS,
            )
    except TrainingDataError as exc:
        raise _fail(str(exc)) from None
    _print_registered(registered, trained)


def _print_registered(registered, trained) -> None:
    _print(
        {
            "run_id": registered.run_id,
            "model_uri": registered.model_uri,
            "metrics": trained.metrics,
            "champion": registered.champion,
            "promotion": registered.promotion,
        }
    )


def _model_folder(uri: str, *, kind: str, artifact: str, scratch: Path) -> Path:
    """The model folder `--model` names: a local folder (or its parent), or a registry URI's, downloaded."""
    local = Path(uri)
    if local.is_dir():
        return local / artifact if (local / artifact).is_dir() else local
    if not uri.startswith(("models:/", "runs:/")):
        raise _fail(f"--model {uri}: neither a model folder nor a registry URI (models:/{kind}__<tenant>/<version>)")
    import mlflow

    mlflow.set_tracking_uri(_settings().mlflow_location)
    mlflow.set_registry_uri(_settings().mlflow_location)
    try:
        folder = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(scratch)))
    except Exception as exc:  # MLflow raises several kinds for a missing model or version
        raise _fail(f"--model {uri}: {exc}") from None
    return folder / "artifacts" / artifact


def _intent_model(uri: str, scratch: Path):
    from models.intent.model import IntentModel
    from models.intent.pyfunc import ARTIFACT

    return IntentModel.load(_model_folder(uri, kind="intent", artifact=ARTIFACT, scratch=scratch))


@evaluate_app.command("intent")
def evaluate_intent(
    model: Annotated[str, typer.Option("--model", help="models:/intent__<tenant>/<version>, @champion, or a folder")],
    test: Annotated[Path, typer.Option("--test", help="CSV of labelled examples")],
    text_col: TextCol = "text",
    label_col: LabelCol = "label",
    oos_label: OosLabel = None,
) -> None:
    """Evaluate an intent model; prints {accuracy, macro_f1, in_scope_accuracy, oos_recall, oos_precision, n}."""
    from models.intent.evaluate import intent_metrics
    from models.training import TrainingDataError, read_rows

    try:
        rows = read_rows(test, text_col=text_col, label_col=label_col)
    except TrainingDataError as exc:
        raise _fail(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="parley-eval-") as scratch:
        loaded = _intent_model(model, Path(scratch))
        predictions = loaded.predict([text for text, _ in rows])
    _print(intent_metrics(predictions, [label for _, label in rows], oos_label=oos_label))


NumericLabels = Annotated[
    bool, typer.Option("--numeric-labels", help="Labels 0/1/2 mean negative/neutral/positive (TweetEval's coding)")
]


@train_app.command("sentiment")
def train_sentiment(
    train: Annotated[Path, typer.Option("--train", help="CSV of texts labelled negative, neutral or positive")],
    tenant: Annotated[
        str, typer.Option("--tenant", help="Whose model (registered as sentiment__<tenant>)")
    ] = DEFAULT_TENANT,
    text_col: TextCol = "text",
    label_col: LabelCol = "label",
    numeric_labels: NumericLabels = False,
    recipe: Annotated[
        str,
        typer.Option("--recipe", help="e5 (multilingual-e5-small; the better, ~70 texts/s) or linear (MiniLM, ~250/s)"),
    ] = "e5",
) -> None:
    """Train a sentiment model; prints {run_id, model_uri, metrics, champion}."""
    from models.sentiment.train import RECIPES, check_rows, normalise_labels
    from models.training import TrainingDataError, read_rows

    settings = _settings()
    try:  # the data is checked before MLflow is even imported
        rows = read_rows(train, text_col=text_col, label_col=label_col)
        check_rows(normalise_labels(rows, numeric=numeric_labels))
        if recipe not in RECIPES:
            raise TrainingDataError(f"--recipe must be one of {', '.join(RECIPES)}, not {recipe!r}")
    except TrainingDataError as exc:
        raise _fail(str(exc)) from None
    from core.embeddings import ensure_model
    from core.registry import Registry
    from models.sentiment.pyfunc import ARTIFACT, PIP_REQUIREMENTS, SentimentPyfunc
    from models.sentiment.train import train_sentiment
    from models.training import register

    try:
        with tempfile.TemporaryDirectory(prefix="parley-sentiment-") as scratch:
            trained = train_sentiment(
                rows,
                base_encoder_dir=ensure_model(settings.models_location),
                folder=Path(scratch) / ARTIFACT,
                recipe=recipe,
                numeric_labels=numeric_labels,
            )
            registered = register(
                tenant_id=tenant,
                kind="sentiment",
                trained=trained,
                registry=Registry(settings.mlflow_location),
                python_model=SentimentPyfunc(),
                artifact=ARTIFACT,
                pip_requirements=PIP_REQUIREMENTS,
            )
    except TrainingDataError as exc:
        raise _fail(str(exc)) from None
    _print_registered(registered, trained)


def _sentiment_model(uri: str, scratch: Path):
    from models.sentiment.model import SentimentModel
    from models.sentiment.pyfunc import ARTIFACT

    return SentimentModel.load(_model_folder(uri, kind="sentiment", artifact=ARTIFACT, scratch=scratch))


@evaluate_app.command("sentiment")
def evaluate_sentiment(
    model: Annotated[
        str, typer.Option("--model", help="models:/sentiment__<tenant>/<version>, @champion, a folder, or vader")
    ],
    test: Annotated[Path, typer.Option("--test", help="CSV of labelled texts")],
    text_col: TextCol = "text",
    label_col: LabelCol = "label",
    numeric_labels: NumericLabels = False,
) -> None:
    """Evaluate a sentiment model (or the VADER baseline); prints {macro_recall, accuracy, macro_f1, n}."""
    from models.sentiment.train import normalise_labels, sentiment_metrics
    from models.training import TrainingDataError, read_rows

    try:
        rows = normalise_labels(read_rows(test, text_col=text_col, label_col=label_col), numeric=numeric_labels)
    except TrainingDataError as exc:
        raise _fail(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="parley-eval-") as scratch:
        if model == "vader":
            from models.sentiment.vader import VaderScorer

            scorer = VaderScorer()
        else:
            scorer = _sentiment_model(model, Path(scratch))
        labels = scorer.score([text for text, _ in rows]).labels
    _print(sentiment_metrics(labels, [label for _, label in rows]))


@evaluate_app.command("summarize")
def evaluate_summarize(
    test: Annotated[Path, typer.Option("--test", help="JSONL of dialogues and reference summaries (DialogSum)")],
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N dialogues")] = None,
) -> None:
    """ROUGE-1/2/L F1 of the extractive summarizer against each dialogue's `summary`; prints {rouge1, rouge2,
    rougeL, n}."""
    from models.summarize.evaluate import DialogueDataError, evaluate_extractive, read_dialogues

    try:
        dialogues = read_dialogues(test, limit=limit)
    except DialogueDataError as exc:
        raise _fail(str(exc)) from None
    _print(evaluate_extractive(dialogues))
