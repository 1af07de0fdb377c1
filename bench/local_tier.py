"""The optional `local` tier by hand: load SmolLM2-135M, answer 5 support questions through chat() and stream().

Prints load time, time to first token (P50), tokens/s, whether the stream's own token counts match chat()'s usage
(temperature 0, so both produce the same answer), and one answer. Needs the `local` extra; says how to get it if absent.
Not part of `make bench` nor of the test suite.
"""

from __future__ import annotations

import asyncio
import importlib.util
import statistics
import time
from pathlib import Path

from core.llm.base import ChatMessage, ChatParams, Usage
from core.llm.local import INSTALL, LocalProvider, default_model_path

SYSTEM = "You are the customer-support assistant of an online shop. Answer in two sentences at most."
QUESTIONS = [
    "How do I reset my password?",
    "Can I change the delivery address after placing an order?",
    "How long does a refund take?",
    "Do you ship internationally?",
    "How do I cancel my subscription?",
]


async def run(model_path: Path) -> None:
    provider = LocalProvider(model_path=model_path)
    started = time.perf_counter()
    await provider.load()
    load_s = time.perf_counter() - started
    params = ChatParams(model=model_path.stem, max_tokens=96, temperature=0.0)
    chat_rates, ttfts, stream_rates, matches, answers = [], [], [], 0, []
    try:
        for question in QUESTIONS:
            messages = [ChatMessage("system", SYSTEM), ChatMessage("user", question)]
            # The stream first: were chat() first, llama's KV cache would hold the whole prompt and skip the prefill.
            started = time.perf_counter()
            first, usage, text = None, Usage(0, 0), []
            async for delta in provider.stream(messages, params):
                if delta.text:
                    first = first or time.perf_counter()
                    text.append(delta.text)
                usage = delta.usage or usage
            done = time.perf_counter()
            ttfts.append(first - started)
            stream_rates.append((usage.output_tokens - 1) / (done - first))  # decoding only, after the first token

            started = time.perf_counter()
            completion = await provider.chat(messages, params)
            chat_rates.append(completion.usage.output_tokens / (time.perf_counter() - started))
            answers.append(completion.text)
            matches += usage == completion.usage and "".join(text) == completion.text
    finally:
        await provider.aclose()
    size_mib = model_path.stat().st_size / 2**20
    print(f"local tier: {model_path.name} ({size_mib:.0f} MiB), n_threads {provider.n_threads}, {len(QUESTIONS)} Qs")
    print(f"  load                           {load_s * 1000:5.0f} ms")
    print(f"  stream time to first token P50 {statistics.median(ttfts) * 1000:5.0f} ms  max {max(ttfts) * 1000:.0f} ms")
    print(f"  stream decode tokens/s     P50 {statistics.median(stream_rates):5.0f}")
    print(f"  chat tokens/s              P50 {statistics.median(chat_rates):5.0f}   (prompt already in the KV cache)")
    print(f"  stream text and usage == chat's: {matches}/{len(QUESTIONS)}")
    print(f"  sample: Q: {QUESTIONS[0]}\n          A: {answers[0]!r}")


def main() -> None:
    model_path = default_model_path()
    if model_path is None or importlib.util.find_spec("llama_cpp") is None:
        print(f"local tier not installed; to try it (builds llama.cpp, about 9 minutes): {INSTALL}")
        return
    asyncio.run(run(model_path))


if __name__ == "__main__":
    main()
