"""Per-tenant intent classification with out-of-scope detection: an encoder (the serving MiniLM, or the tenant's
fine-tuned copy of it, as int8 ONNX) and a calibrated linear head."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IntentPrediction:
    intent: str | None  # None when out of scope
    confidence: float  # the calibrated probability of the top intent
    out_of_scope: bool  # the out-of-scope class, or below the threshold learnt from out-of-scope examples
    uncertain: bool = False  # below the confidence floor: serving treats it as out of scope, figures do not
