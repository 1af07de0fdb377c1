"""Calibrates the knowledge-base answerer's "I don't know" threshold (core/llm/kb.py DEFAULT_MIN_SCORE).

In scope: StackFAQ paraphrases against the StackFAQ knowledge base. Out of scope: CLINC150's out-of-scope queries and
its in-scope queries from banking, travel, cooking and the rest, none of which the StackFAQ threads answer. The best
hit's dense cosine decides. The threshold that maximises balanced accuracy is chosen on one half of the queries and
reported on the other half. Anchor, in the same run: the current default threshold on the same held-out half.
"""

from __future__ import annotations

import json
import random

import numpy as np

from bench._kb import SHARED_DATA, STACKFAQ, stackfaq_platform, stackfaq_queries
from core.llm.kb import DEFAULT_MIN_SCORE

OUT_OF_SCOPE_SAMPLE = 1000
SEED = 7


def out_of_scope_queries() -> list[str]:
    clinc = json.loads((SHARED_DATA / "clinc150" / "data_full_train_val.json").read_text(encoding="utf-8"))
    oos = [text for text, _ in clinc["oos_train"] + clinc["oos_val"]]
    in_scope_elsewhere = [text for text, _ in clinc["val"]]
    random.Random(SEED).shuffle(in_scope_elsewhere)
    return oos + in_scope_elsewhere[: OUT_OF_SCOPE_SAMPLE - len(oos)]


def balanced_accuracy(scores_in: np.ndarray, scores_out: np.ndarray, threshold: float) -> tuple[float, float, float]:
    answered = float(np.mean(scores_in >= threshold))
    declined = float(np.mean(scores_out < threshold))
    return (answered + declined) / 2, answered, declined


def main() -> None:
    if not STACKFAQ.exists():
        print(f"answer threshold: skipped, {STACKFAQ} not found")
        return
    inside = [text for text, _ in stackfaq_queries()]
    outside = out_of_scope_queries()
    with stackfaq_platform() as platform:

        def best(texts):
            return np.array([max((hit["relevance"] for hit in platform.search(t, 5)), default=-1.0) for t in texts])

        scores_in, scores_out = best(inside), best(outside)
    rng = np.random.default_rng(SEED)
    half_in, half_out = rng.permutation(len(scores_in)) % 2 == 0, rng.permutation(len(scores_out)) % 2 == 0
    candidates = np.round(np.arange(0.10, 0.80, 0.01), 2)
    chosen = max(candidates, key=lambda t: balanced_accuracy(scores_in[half_in], scores_out[half_out], t)[0])
    held_in, held_out = scores_in[~half_in], scores_out[~half_out]
    tuned = balanced_accuracy(held_in, held_out, chosen)
    current = balanced_accuracy(held_in, held_out, DEFAULT_MIN_SCORE)
    print(f"answer threshold: {len(inside)} in-scope StackFAQ queries, {len(outside)} out-of-scope CLINC150 queries")
    print(f"  best-hit cosine, in scope:     p5 {np.percentile(scores_in, 5):.3f}  median {np.median(scores_in):.3f}")
    print(
        f"  best-hit cosine, out of scope: median {np.median(scores_out):.3f}  p95 {np.percentile(scores_out, 95):.3f}"
    )
    print(
        f"  calibrated threshold {chosen:.2f} on held-out half: balanced accuracy {tuned[0]:.3f} "
        f"(answers {tuned[1]:.3f} of in-scope, declines {tuned[2]:.3f} of out-of-scope)"
    )
    print(
        f"  anchor: default {DEFAULT_MIN_SCORE:.2f} on the same half: balanced accuracy {current[0]:.3f} "
        f"(answers {current[1]:.3f}, declines {current[2]:.3f})"
    )


if __name__ == "__main__":
    main()
