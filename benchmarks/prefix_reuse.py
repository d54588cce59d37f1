"""What reusing cached prompt key/values is worth: a multi-turn chat (the whole history is
resent each turn) through the transformers backend with the prefix cache on and off,
same model, same run, turns interleaved. Prints time to first token per turn.

    python benchmarks/prefix_reuse.py [--model-path PATH] [--turns 6] [--system-words 150]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default=None, help="default: the bundled model")
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--system-words", type=int, default=150)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from palestra.backends.hf.backend import HFBackend
    from palestra.core.types import GenerationRequest, SamplingParams

    backends = {
        "cache on": HFBackend.load(args.model_path, device="cpu"),
        "cache off": HFBackend.load(args.model_path, device="cpu", prefix_cache_tokens=0),
    }
    system = " ".join(["You are a helpful and precise assistant."] * (args.system_words // 7))
    questions = ["Hello! Who are you?", "What is the capital of Norland?", "What is 3 plus 4?"]
    params = SamplingParams(temperature=0, max_tokens=args.max_tokens, ignore_eos=True)

    async def first_token(backend: HFBackend, history: list[dict[str, str]]) -> tuple[float, str]:
        request = GenerationRequest(backend.chat_prompt(history), params)
        started = time.perf_counter()
        ttft, text = 0.0, ""
        async for chunk in backend.generate(request):
            if not ttft and chunk.token_ids:
                ttft = time.perf_counter() - started
            text += chunk.text
        return ttft, text

    async def run() -> dict[str, list[list[float]]]:
        timings: dict[str, list[list[float]]] = {name: [] for name in backends}
        histories = {name: [{"role": "system", "content": system}] for name in backends}
        for turn in range(args.turns):
            for name, backend in backends.items():  # interleaved: drift hits both alike
                history = histories[name]
                history.append({"role": "user", "content": questions[turn % len(questions)]})
                samples = []
                for _ in range(args.repeats):
                    ttft, reply = await first_token(backend, history)
                    samples.append(ttft)
                history.append({"role": "assistant", "content": reply})
                timings[name].append(samples)
        return timings

    timings = asyncio.run(run())
    prompt_tokens = [
        backends["cache on"].count_tokens(backends["cache on"].chat_prompt(h))
        for h in [[{"role": "system", "content": system}]]
    ]
    print(f"model: {args.model_path or 'bundled'}; system prompt {prompt_tokens[0]} tokens")
    print("turn | cache on: first-turn-run TTFT / repeat TTFT | cache off: TTFT (median)")
    for turn in range(args.turns):
        on, off = timings["cache on"][turn], timings["cache off"][turn]
        print(
            f"{turn + 1:>4} | {on[0] * 1000:7.1f} ms / {statistics.median(on[1:]) * 1000:7.1f} ms"
            f" | {statistics.median(off) * 1000:7.1f} ms"
        )
    cache = backends["cache on"]._engine.prefix_cache  # type: ignore[union-attr]
    print(f"prefix cache: {cache.hits} hits, {cache.reused_tokens} prompt tokens reused")


if __name__ == "__main__":
    main()
