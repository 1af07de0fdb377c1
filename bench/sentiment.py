"""Sentiment throughput of the baseline scorer: models.sentiment.vader.VaderScorer on real short texts.

Goal (issue): sentiment >= 20,000 messages/s with the baseline scorer.

Texts: every Banking77 utterance (train + test, customer questions) and every TweetEval sentiment tweet in
../shared/data, in that order, repeated to TEXTS texts (VADER keeps no cache, so a repeat costs what the first did).
Measured, each in a fresh interpreter (bench/_lake.run_worker):
  - VaderScorer().score(texts), RUNS times, as run_sentiment calls it (one call per tenant chunk): each call starts
    its forkserver and two worker processes and splits the texts over them; the figure is the median call,
    labels and the float32 scores included;
  - anchor: a bare single-process loop, SentimentIntensityAnalyzer().polarity_scores(text)["compound"] over the
    same texts, once (nothing else: no processes, no labels).
On 2 cores the scorer can at best be twice the anchor; both compute the same compound scores (checked).
"""

from __future__ import annotations

import argparse
import csv
import time

from bench._data import DATA, code_line, machine_line
from bench._lake import median, run_worker

GOAL_PER_S = 20_000
TEXTS, QUICK_TEXTS = 200_000, 60_000  # quick stays above VaderScorer's PARALLEL_FROM (50,000)
RUNS, QUICK_RUNS = 3, 2
WORKER_TIMEOUT_S = 300


def real_texts() -> tuple[list[str], dict[str, int]]:
    texts: list[str] = []
    counts = {}
    for split in ("train", "test"):
        with open(DATA / "banking77" / f"{split}.csv", newline="", encoding="utf-8") as handle:
            rows = [row["text"] for row in csv.DictReader(handle)]
        counts[f"banking77 {split}"] = len(rows)
        texts += rows
    tweets = (DATA / "tweeteval_sentiment" / "val_text.txt").read_text(encoding="utf-8").splitlines()
    counts["tweeteval val"] = len(tweets)
    return texts + tweets, counts


def texts_of(count: int) -> list[str]:
    real, _ = real_texts()
    return (real * -(-count // len(real)))[:count]


def _checksum(values) -> float:
    return float(sum(float(v) for v in values))


def scorer_runs(count: int, runs: int) -> dict:
    from bench._lake import timed
    from models.sentiment.vader import PARALLEL_FROM, VaderScorer

    texts = texts_of(count)
    scorer = VaderScorer()
    calls = []
    for _ in range(runs):
        result = timed(lambda: scorer.score(texts), children=True)
        scores = result.pop("value")
        calls.append(result)
    labels = {label: scores.labels.count(label) for label in sorted(set(scores.labels))}
    return {
        "calls": calls,
        "processes": scorer.processes,
        "parallel_from": PARALLEL_FROM,
        "labels": labels,
        "checksum": _checksum(scores.scores),
    }


def bare_loop(count: int) -> dict:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from bench._lake import timed

    texts = texts_of(count)
    analyzer = SentimentIntensityAnalyzer()
    result = timed(lambda: [analyzer.polarity_scores(text)["compound"] for text in texts])
    compound = result.pop("value")
    import numpy as np

    return {**result, "checksum": _checksum(np.asarray(compound, dtype=np.float32))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sentiment", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_TEXTS:,} texts, {QUICK_RUNS} runs")
    args = parser.parse_args(argv)
    count, runs = (QUICK_TEXTS, QUICK_RUNS) if args.quick else (TEXTS, RUNS)
    setup = [machine_line(), code_line()]
    started = time.perf_counter()
    _, sources = real_texts()
    scorer = run_worker("bench.sentiment", "scorer_runs", {"count": count, "runs": runs}, timeout=WORKER_TIMEOUT_S)
    anchor = run_worker("bench.sentiment", "bare_loop", {"count": count}, timeout=WORKER_TIMEOUT_S)
    setup.append(f"after the run ({time.perf_counter() - started:.0f} s): {machine_line()}")

    real = sum(sources.values())
    print(
        f"sentiment: VaderScorer ({scorer['processes']} forkserver processes from {scorer['parallel_from']:,} texts) "
        f"on {count:,} real texts"
    )
    for line in setup:
        print(f"  {line}")
    print(
        "  texts: "
        + ", ".join(f"{name} {n:,}" for name, n in sources.items())
        + f" = {real:,} distinct sources, repeated {count / real:.1f}x"
    )
    anchor_rate = count / anchor["seconds"]
    print(
        f"  anchor: bare single-process VADER loop {anchor['seconds']:.2f} s = {anchor_rate:,.0f} texts/s "
        f"(CPU {anchor['cpu_s']:.1f} s: {count / anchor['cpu_s']:,.0f} texts per CPU second; "
        f"peak RSS {anchor['peak_rss_mb']:.0f} MB)"
    )
    rates = []
    for n, call in enumerate(scorer["calls"], 1):
        rate = count / call["seconds"]
        rates.append(rate)
        cpu = call["cpu_s"] + call["children_cpu_s"]
        print(
            f"  VaderScorer.score call {n}: {call['seconds']:.2f} s = {rate:,.0f} texts/s "
            f"({rate / anchor_rate:.2f}x the anchor); CPU {cpu:.1f} s ({call['children_cpu_s']:.1f} s in workers, "
            f"{cpu / call['seconds']:.2f} cores busy; {count / cpu:,.0f} texts per CPU second); "
            f"peak RSS with workers {call['tree_peak_rss_mb']:.0f} MB"
        )
    same = abs(scorer["checksum"] - anchor["checksum"]) <= 1e-3 * max(1.0, abs(anchor["checksum"]))
    print(
        f"  labels of the last call: {scorer['labels']}; compound scores "
        f"{'match the anchor' if same else 'DIFFER FROM THE ANCHOR'} (sums {scorer['checksum']:.2f} / "
        f"{anchor['checksum']:.2f})"
    )
    rate = median(rates)
    verdict = "PASS" if rate >= GOAL_PER_S and same else "FAIL"
    print(
        f"goal: sentiment >= {GOAL_PER_S:,} messages/s with the baseline scorer: {verdict} (VaderScorer median of "
        f"{len(rates)} calls {rate:,.0f} texts/s; anchor, a bare single-process loop, {anchor_rate:,.0f} texts/s; "
        f"ratio {rate / anchor_rate:.2f}x, at best {scorer['processes']}x on {scorer['processes']} processes)"
    )


if __name__ == "__main__":
    main()
