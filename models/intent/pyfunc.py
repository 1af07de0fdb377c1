"""The MLflow pyfunc face of an intent model: `mlflow.pyfunc.load_model(uri).predict(texts)` gives a frame of
intent, confidence and out_of_scope per text, for anyone who loads it outside Parley."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd

PIP_REQUIREMENTS = ["numpy==2.4.6", "onnxruntime==1.32.0", "tokenizers==0.23.3", "pandas==3.1.1"]
ARTIFACT = "model"


class IntentPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from models.intent.model import IntentModel

        self.model = IntentModel.load(Path(context.artifacts[ARTIFACT]))

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        texts = list(model_input["text"]) if isinstance(model_input, pd.DataFrame) else list(model_input)
        predictions = self.model.predict([str(t) for t in texts])
        return pd.DataFrame(
            {
                "intent": [p.intent for p in predictions],
                "confidence": [p.confidence for p in predictions],
                "out_of_scope": [p.out_of_scope for p in predictions],
            }
        )
