"""`palestra convert gguf`: a transformers model folder into a GGUF file for llama.cpp."""

from __future__ import annotations

import typer

app = typer.Typer(help="Convert model formats.", no_args_is_help=True)


@app.command("gguf")
def gguf(
    model_dir: str = typer.Argument(..., help="A transformers model folder (Llama family)."),
    out: str = typer.Option(None, "--out", help="Default: MODEL_DIR/NAME-OUTTYPE.gguf"),
    outtype: str = typer.Option(
        "f16",
        "--outtype",
        help="f32, f16, or a llama.cpp quantisation: q8_0, q6_k, q5_k_m, q5_0, q4_k_m, q4_0.",
    ),
) -> None:
    """Write MODEL_DIR as one GGUF file (tokenizer and chat template included)."""
    import logging

    from palestra.backends.llamacpp.convert import convert_to_gguf

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # the quantiser's log
    result = convert_to_gguf(model_dir, out, outtype)
    print(
        f"{result.path}  ({result.tensors} tensors, {result.outtype}, "
        f"{result.size_bytes / 2**20:.1f} MiB)"
    )
