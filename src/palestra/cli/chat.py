"""Chat with a model in the terminal (default: the bundled Palestra Tiny).

Type a message and press Enter. Commands: !!exit, !!reset, !!remove, !!regen, !!save FILE,
!!load FILE. Lines piped on stdin are sent one by one and each reply is printed on a line.
"""

from __future__ import annotations

from enum import StrEnum

import typer


class Style(StrEnum):
    simple = "simple"
    rich = "rich"


def chat(
    model_path: str = typer.Option(None, "--model-path", help="Model folder (default: bundled)."),
    conv_template: str = typer.Option(
        None, "--conv-template", help="Template name or .jinja file (see `palestra templates`)."
    ),
    system: str = typer.Option(None, "--system", help="System message."),
    temperature: float = typer.Option(0.7, help="0 means greedy decoding."),
    top_p: float = typer.Option(1.0, "--top-p"),
    top_k: int = typer.Option(0, "--top-k", help="0 disables top-k."),
    repetition_penalty: float = typer.Option(1.0, "--repetition-penalty"),
    max_new_tokens: int = typer.Option(512, "--max-new-tokens"),
    seed: int = typer.Option(None, "--seed"),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    dtype: str = typer.Option("auto", help="auto, float32, float16 or bfloat16."),
    load_8bit: bool = typer.Option(False, "--load-8bit", help="8-bit weights (CUDA)."),
    num_gpus: int = typer.Option(1, "--num-gpus"),
    max_gpu_memory: str = typer.Option(None, "--max-gpu-memory", help="Per GPU, e.g. 20GiB."),
    style: Style = typer.Option(Style.simple, "--style"),
    multiline: bool = typer.Option(False, "--multiline", help="Esc+Enter sends."),
    no_history: bool = typer.Option(False, "--no-history", help="Forget earlier turns."),
    debug: bool = typer.Option(False, "--debug", help="Print the exact prompt."),
) -> None:
    from palestra.backends.registry import create_backend
    from palestra.core.types import SamplingParams
    from palestra.templates.library import get_template
    from palestra.terminal.console import make_io
    from palestra.terminal.loop import run_chat
    from palestra.terminal.session import ChatSession

    if conv_template:
        get_template(conv_template)  # fail fast, before loading weights
    from palestra.backends.hf.loading import quiet_transformers

    quiet_transformers()
    sampling = SamplingParams(
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        repetition_penalty=repetition_penalty,
        max_tokens=max_new_tokens,
        seed=seed,
    )
    backend = create_backend(
        "hf",
        model_path=model_path,
        conv_template=conv_template,
        device=device,
        dtype=dtype,
        num_gpus=num_gpus,
        max_gpu_memory=max_gpu_memory,
        load_8bit=load_8bit,
    )
    io = make_io(style.value, multiline)
    io.info(
        f"palestra chat: {backend.model_name} (template {backend.template.name}); !!exit to quit"
    )
    session = ChatSession(backend, sampling, system=system, keep_history=not no_history)
    run_chat(session, io, debug=debug)
