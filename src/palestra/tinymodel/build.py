"""Build Palestra Tiny from nothing: train a byte-level BPE tokenizer on generated text,
pretrain a small Llama on generated English, fine-tune it on generated conversations with
`palestra train sft` (assistant-only loss masks from Palestra's template renderer), save a
plain Hugging Face model folder, and evaluate it on held-out questions.

    python -m palestra.tinymodel.build --out src/palestra/bundled/tiny-chat

Reproduces the bundled model on a 2-core CPU in under 30 minutes (seeded; the figures in
the folder's eval_results.json come from the same run).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SFT_BATCH = 32


def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
    )
    core.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=512,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def make_tokenizer_config_portable(folder: Path) -> None:
    """Keep the chat template inside tokenizer_config.json and name the generic fast
    tokenizer class, so transformers 4.x loaders read the folder as well as 5.x."""
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["chat_template"] = CHAT_TEMPLATE
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_file.write_text(json.dumps(config, indent=2) + "\n")


def make_model(tokenizer: Any, hidden: int, layers: int, heads: int) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=int(hidden * 2.6875),
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def _lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _train(
    model: Any, batches: Iterator[tuple[Any, Any]], steps: int, peak_lr: float, label: str
) -> None:
    import torch

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=peak_lr, betas=(0.9, 0.95), weight_decay=0.05
    )
    model.train()
    started, smoothed = time.time(), None
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, steps, peak_lr, warmup=max(10, steps // 20))
        input_ids, labels = next(batches)
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        smoothed = loss.item() if smoothed is None else 0.95 * smoothed + 0.05 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            print(
                f"[{label}] step {step:5d}/{steps} loss {smoothed:.4f} "
                f"({time.time() - started:.0f}s)",
                flush=True,
            )


def pretraining_batches(tokenizer: Any, seed: int, batch: int, length: int) -> Iterator[Any]:
    import torch

    from palestra.tinymodel.corpus import pretraining_document

    rng = random.Random(seed)
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    buffer: list[int] = []
    while True:
        while len(buffer) < batch * length:
            buffer += tokenizer(pretraining_document(rng))["input_ids"] + [eot]
        rows = torch.tensor(buffer[: batch * length]).view(batch, length)
        buffer = buffer[batch * length :]
        yield rows, rows.clone()


def build(
    out: Path,
    *,
    seed: int,
    vocab_size: int,
    hidden: int,
    layers: int,
    heads: int,
    pretrain_steps: int,
    sft_steps: int,
    sft_shuffle_seed: int | None = None,
) -> dict[str, Any]:
    import torch
    from transformers import GenerationConfig

    from palestra.tinymodel.corpus import pretraining_document, training_conversations
    from palestra.tinymodel.evaluate import evaluate_model
    from palestra.train.sft import SFTConfig, run_sft

    torch.manual_seed(seed)
    started = time.time()
    rng = random.Random(seed)
    conversations = training_conversations(seed + 1)
    sample = [pretraining_document(rng) for _ in range(6000)]
    sample += [" ".join(m["content"] for m in next(conversations)) for _ in range(6000)]
    tokenizer = train_tokenizer(sample, vocab_size)
    model = make_model(tokenizer, hidden, layers, heads)
    params = sum(p.numel() for p in model.parameters())
    print(f"tokenizer: {len(tokenizer)} tokens; model: {params / 1e6:.2f}M parameters", flush=True)

    _train(
        model,
        pretraining_batches(tokenizer, seed + 2, batch=16, length=256),
        pretrain_steps,
        3e-3,
        "pretrain",
    )
    # The supervised stage is `palestra train sft` itself, on the pretrained checkpoint.
    work = Path(tempfile.mkdtemp(prefix="palestra-tiny-"))
    model.save_pretrained(work / "pretrained", safe_serialization=True)
    tokenizer.save_pretrained(work / "pretrained")
    data = work / "sft.jsonl"
    stream = training_conversations(seed + 3)
    with data.open("w") as handle:
        for _ in range(sft_steps * SFT_BATCH):
            handle.write(json.dumps({"messages": next(stream)}) + "\n")
    run_sft(
        SFTConfig(
            data=str(data),
            out=str(out),
            model_path=str(work / "pretrained"),
            max_length=256,
            epochs=1,
            learning_rate=1.5e-3,
            batch_size=SFT_BATCH,
            warmup_ratio=0.05,
            weight_decay=0.05,
            adam_beta2=0.95,
            min_lr_ratio=0.1,
            logging_steps=50,
            save_steps=10**9,
            seed=seed if sft_shuffle_seed is None else sft_shuffle_seed,
            device="cpu",
        )
    )
    shutil.rmtree(work, ignore_errors=True)
    for checkpoint in out.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    (out / "palestra_training.json").unlink(missing_ok=True)  # holds temporary paths

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=model.config.bos_token_id,
        do_sample=True,
        temperature=0.7,
        top_p=0.9,
        max_new_tokens=128,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    make_tokenizer_config_portable(out)
    build_seconds = time.time() - started
    report = evaluate_model(out)
    report.update(
        build_seconds=round(build_seconds),
        parameters=params,
        seed=seed,
        pretrain_steps=pretrain_steps,
        sft_steps=sft_steps,
        sft_shuffle_seed=sft_shuffle_seed,
    )
    (out / "eval_results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "failures"}, indent=2))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("src/palestra/bundled/tiny-chat"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--pretrain-steps", type=int, default=500)
    parser.add_argument("--sft-steps", type=int, default=1500)
    parser.add_argument(
        "--sft-shuffle-seed", type=int, default=None, help="Order of SFT examples; default --seed."
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    build(
        args.out,
        seed=args.seed,
        vocab_size=args.vocab_size,
        hidden=args.hidden,
        layers=args.layers,
        heads=args.heads,
        pretrain_steps=args.pretrain_steps,
        sft_steps=args.sft_steps,
        sft_shuffle_seed=args.sft_shuffle_seed,
    )


if __name__ == "__main__":
    main()
