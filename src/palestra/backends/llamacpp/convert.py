"""`palestra convert gguf`: a transformers model folder (Llama-architecture: Llama,
Mistral without sliding windows, Palestra Tiny) into one GGUF file for llama.cpp, written
with the `gguf` package, then optionally quantised by llama.cpp's own quantiser through
llama-cpp-python. Nothing is downloaded.

What a GGUF file needs that a safetensors folder keeps elsewhere:
- hyperparameters under llama.cpp's key names;
- q/k projection rows reordered from transformers' rotate-half layout to the interleaved
  layout llama.cpp's rotary embedding expects (as llama.cpp's own converter does);
- the tokenizer: byte-level BPE tokens, their types, merges, special token ids and the
  chat template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palestra.core.errors import InvalidRequestError, UnsupportedError

LLAMA_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")
QUANT_TYPES = ("q8_0", "q6_k", "q5_k_m", "q5_0", "q4_k_m", "q4_0")


@dataclass(frozen=True)
class ConvertResult:
    path: Path
    tensors: int
    outtype: str
    size_bytes: int


def convert_to_gguf(
    model_dir: str | Path, out: str | Path | None = None, outtype: str = "f16"
) -> ConvertResult:
    """Write `model_dir` as GGUF; `outtype` is f32, f16 or one of QUANT_TYPES."""
    model_dir = Path(model_dir)
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise InvalidRequestError(f"{model_dir} is not a model folder (no config.json)")
    if outtype not in ("f32", "f16", *QUANT_TYPES):
        raise InvalidRequestError(
            f"unknown --outtype {outtype!r}; use f32, f16 or {', '.join(QUANT_TYPES)}"
        )
    config = json.loads(config_file.read_text())
    architecture = (config.get("architectures") or ["?"])[0]
    if architecture not in LLAMA_ARCHITECTURES:
        raise UnsupportedError(
            f"palestra converts {', '.join(LLAMA_ARCHITECTURES)}; {architecture} needs "
            "llama.cpp's convert_hf_to_gguf.py"
        )
    if config.get("sliding_window"):
        raise UnsupportedError("sliding-window Mistral models need llama.cpp's converter")
    out = Path(out) if out else model_dir / f"{model_dir.name}-{outtype}.gguf"
    float_out = out if outtype in ("f32", "f16") else out.with_suffix(".f16.tmp.gguf")
    count = _write_float_gguf(model_dir, config, float_out, outtype if outtype == "f32" else "f16")
    if float_out != out:
        try:
            _quantize(float_out, out, outtype)
        finally:
            float_out.unlink(missing_ok=True)
    return ConvertResult(out, count, outtype, out.stat().st_size)


def _write_float_gguf(model_dir: Path, config: dict[str, Any], out: Path, outtype: str) -> int:
    import gguf
    import numpy as np
    from safetensors import safe_open

    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    hidden = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name(model_dir.name)
    writer.add_context_length(int(config.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(int(config.get("head_dim") or hidden // heads))
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_file_type(
        gguf.LlamaFileType.ALL_F32 if outtype == "f32" else gguf.LlamaFileType.MOSTLY_F16
    )
    _add_tokenizer(writer, model_dir, int(config["vocab_size"]))

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise InvalidRequestError(f"no .safetensors weights in {model_dir}")
    count = 0
    for file in files:
        with safe_open(str(file), framework="numpy") as tensors:
            for name in tensors.keys():  # noqa: SIM118 - safe_open has no __iter__
                if name.endswith("rotary_emb.inv_freq"):
                    continue
                target = names.get_name(name, try_suffixes=(".weight", ".bias"))
                if target is None:
                    raise UnsupportedError(f"no GGUF name for tensor {name!r}")
                data = tensors.get_tensor(name).astype(np.float32)
                if name.endswith("q_proj.weight"):
                    data = _interleave_rotary(data, heads)
                elif name.endswith("k_proj.weight"):
                    data = _interleave_rotary(data, kv_heads)
                if outtype == "f16" and data.ndim == 2:
                    data = data.astype(np.float16)
                writer.add_tensor(target, data)
                count += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return count


def _interleave_rotary(weight: Any, heads: int) -> Any:
    """transformers' rotate-half row order -> llama.cpp's interleaved pairs, per head."""
    rows = weight.shape[0]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _add_tokenizer(writer: Any, model_dir: Path, vocab_size: int) -> None:
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not (model_dir / "tokenizer.json").is_file():
        raise UnsupportedError("only byte-level BPE tokenizers (tokenizer.json) convert here")
    model = json.loads((model_dir / "tokenizer.json").read_text())["model"]
    if model.get("type") != "BPE":
        raise UnsupportedError(f"tokenizer type {model.get('type')!r}: use llama.cpp's converter")
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = {token.content for token in tokenizer.added_tokens_decoder.values()}
    tokens, types = [], []
    for index in range(vocab_size):
        token = by_id.get(index, f"[PAD{index}]")
        tokens.append(token)
        if token in added:
            types.append(gguf.TokenType.CONTROL)
        elif index in by_id:
            types.append(gguf.TokenType.NORMAL)
        else:
            types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # llama.cpp's name for the GPT-2 split rule
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    special.add_to_gguf(writer)


def _quantize(source: Path, out: Path, outtype: str) -> None:
    import ctypes
    import os

    from palestra.backends.llamacpp.backend import require_llama_cpp

    require_llama_cpp()
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{outtype.upper()}")
    params.nthread = os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(
        str(source).encode(), str(out).encode(), ctypes.byref(params)
    )
    if status != 0:
        raise UnsupportedError(f"llama.cpp could not quantise to {outtype} (status {status})")
