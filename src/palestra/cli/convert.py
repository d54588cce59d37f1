"""`palestra convert gguf`: a transformers model folder or Hub id into a GGUF file for
llama.cpp."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Convert model formats.", no_args_is_help=True)


@app.command("gguf")
def gguf(
    model_dir: str = typer.Argument(
        ..., help="A transformers model folder or Hub id (org/name; Llama family)."
    ),
    out: str = typer.Option(
        None,
        "--out",
        help="Default: MODEL_DIR/NAME-OUTTYPE.gguf (for a Hub id: ./NAME-OUTTYPE.gguf).",
    ),
    revision: str = typer.Option(
        None, "--revision", help="Hub branch, tag or commit for a Hub id; default: main."
    ),
    outtype: str = typer.Option(
        "f16",
        "--outtype",
        help="f32, f16, or a llama.cpp quantisation: q8_0, q6_k, q5_k_m, q5_0, q4_k_m, q4_0.",
    ),
) -> None:
    """Write MODEL_DIR as one GGUF file (tokenizer and chat template included)."""
    import logging

    from palestra.backends.llamacpp.convert import convert_to_gguf
    from palestra.models.hub import hub_reference
    from palestra.models.inspect import resolve_model_path

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # the quantiser's log
    reference = hub_reference(model_dir, revision)
    if reference is not None and out is None:  # never write into the Hub cache
        out = str(Path.cwd() / f"{reference.repo_id.split('/')[-1]}-{outtype}.gguf")
    result = convert_to_gguf(resolve_model_path(model_dir, revision), out, outtype)
    print(
        f"{result.path}  ({result.tensors} tensors, {result.outtype}, "
        f"{result.size_bytes / 2**20:.1f} MiB)"
    )
