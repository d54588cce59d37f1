"""Loading a transformers model and tokenizer: device and dtype choice, multi-GPU device
maps with per-GPU memory caps, 8-bit through bitsandbytes, folders quantised already
(GPTQ, AWQ, ...: transformers' quantisation configs, given their packages), PEFT
adapters (several sharing one base), encoder-decoder, embedding and image-text-to-text
(vision) models, the last with their processor, models that ship their own code (only
with --trust-remote-code). Errors say what to change."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from palestra.backends.options import HFOptions
from palestra.core.errors import BackendError, ModelNotFoundError, UnsupportedError
from palestra.models.inspect import ModelInfo, check_remote_code, inspect_model

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    info: ModelInfo
    device: torch.device
    adapters: list[str]
    processor: Any = None  # a vision model's processor (images to tensors, image tokens)


def quiet_transformers() -> None:
    """No progress bars or advisory warnings between a command's user and its output."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UnsupportedError(
            "--device cuda was asked for but no CUDA GPU is visible; use --device cpu (or auto)"
        )
    if requested == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise UnsupportedError("--device mps needs Apple silicon with MPS; use --device cpu")
    if requested not in ("cpu", "cuda", "mps"):
        raise UnsupportedError(f"unknown device {requested!r}; use auto, cpu, cuda or mps")
    return torch.device(requested)


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if requested != "auto":
        if requested not in names:
            raise UnsupportedError(f"unknown dtype {requested!r}; use {', '.join(names)} or auto")
        return names[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def _device_map_kwargs(device: torch.device, options: HFOptions) -> dict[str, Any]:
    if device.type != "cuda":
        return {}
    if options.num_gpus <= 1:
        return {"device_map": {"": 0}}
    available = torch.cuda.device_count()
    if available < options.num_gpus:
        raise UnsupportedError(f"--num-gpus {options.num_gpus} but only {available} GPU(s) visible")
    if options.max_gpu_memory:
        memory = {i: options.max_gpu_memory for i in range(options.num_gpus)}
    else:  # FastChat silently used one GPU here; spread over all, leaving 15% headroom
        memory = {}
        for i in range(options.num_gpus):
            free, _ = torch.cuda.mem_get_info(i)
            memory[i] = f"{int(free * 0.85 / 2**20)}MiB"
    return {"device_map": "auto", "max_memory": memory}


def _quantization_kwargs(device: torch.device, options: HFOptions) -> dict[str, Any]:
    if not options.load_8bit:
        return {}
    if device.type != "cuda":
        raise UnsupportedError(
            "--load-8bit needs a CUDA GPU (bitsandbytes 8-bit kernels); "
            f"this run is on {device.type}. Drop --load-8bit"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UnsupportedError("--load-8bit needs bitsandbytes: pip install 'palestra[quant]'")
    from transformers import BitsAndBytesConfig

    return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}


def _model_class(kind: str) -> Any:
    import transformers

    return {
        "chat": transformers.AutoModelForCausalLM,
        "seq2seq": transformers.AutoModelForSeq2SeqLM,
        "embedding": transformers.AutoModel,
        "cross-encoder": transformers.AutoModelForSequenceClassification,
        "vision": transformers.AutoModelForImageTextToText,
    }[kind]


def _uses_3d_positions(config: dict[str, Any]) -> bool:
    """Qwen2-VL-style rotary positions (one per time, height and width of an image)."""
    for source in (config, config.get("text_config") or {}):
        for key in ("rope_scaling", "rope_parameters"):
            value = source.get(key)
            if isinstance(value, dict) and "mrope_section" in value:
                return True
    return False


def load_model(model_path: str, options: HFOptions | None = None) -> LoadedModel:
    """Load a model folder (or PEFT adapter folder) with the given options."""
    from transformers import AutoTokenizer

    options = options or HFOptions()
    info = inspect_model(model_path)
    device = pick_device(options.device)
    dtype = pick_dtype(options.dtype, device)
    adapters = dict(options.adapters)
    base_path = info.path
    if info.adapter_base:
        adapters = {Path(info.path).name: info.path, **adapters}
        base_path = info.adapter_base
    tokenizer_path = _tokenizer_path(info)
    remote_code = check_remote_code(
        [base_path, tokenizer_path], options.trust_remote_code, "--trust-remote-code"
    )
    quantised = ((info.config or {}).get("quantization_config") or {}).get("quant_method")
    if quantised and options.load_8bit:
        raise UnsupportedError(f"{model_path} is already {quantised}-quantised; drop --load-8bit")
    kwargs: dict[str, Any] = {"dtype": dtype, "low_cpu_mem_usage": True}
    kwargs |= _device_map_kwargs(device, options)
    kwargs |= _quantization_kwargs(device, options)
    kwargs |= remote_code
    processor = None
    if info.kind == "vision" and _uses_3d_positions(info.config or {}):
        raise UnsupportedError(
            f"{model_path} places image tokens with 3-D rotary positions (Qwen2-VL style), "
            "which the hf backend's batching does not follow yet; serve it with --backend vllm"
        )
    try:
        if info.kind == "vision":
            from transformers import AutoProcessor

            processor = AutoProcessor.from_pretrained(tokenizer_path, **remote_code)
            tokenizer = processor.tokenizer
        else:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, **remote_code)
        model = _model_class(info.kind).from_pretrained(base_path, **kwargs)
    except OSError as exc:
        raise ModelNotFoundError(f"could not load {base_path}: {exc}") from exc
    except ValueError as exc:
        raise BackendError(f"transformers cannot load {base_path}: {exc}") from exc
    except ImportError as exc:  # a GPTQ/AWQ/... folder without its kernels' package
        what = f"a {quantised}-quantised model" if quantised else "this model"
        raise UnsupportedError(f"{base_path} is {what}: {exc}") from exc
    if "device_map" not in kwargs:
        model = model.to(device)
    model.eval()
    loaded_adapters: list[str] = []
    if adapters:
        model, loaded_adapters = _attach_adapters(model, adapters)
    _pad_with_eos(tokenizer)
    return LoadedModel(model, tokenizer, info, device, loaded_adapters, processor)


def load_tokenizer(info: ModelInfo, options: HFOptions) -> Any:
    """The tokenizer `load_model` gives a text model, without its weights (the worker's
    front of an engine process)."""
    from transformers import AutoTokenizer

    path = _tokenizer_path(info)
    remote_code = check_remote_code([path], options.trust_remote_code, "--trust-remote-code")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **remote_code)
    except OSError as exc:
        raise ModelNotFoundError(f"could not load the tokenizer of {path}: {exc}") from exc
    _pad_with_eos(tokenizer)
    return tokenizer


def _tokenizer_path(info: ModelInfo) -> str:
    """An adapter folder's own tokenizer if it has one, else its base model's."""
    if (Path(info.path) / "tokenizer_config.json").is_file() or not info.adapter_base:
        return info.path
    return info.adapter_base


def _pad_with_eos(tokenizer: Any) -> None:
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token


def _attach_adapters(model: Any, adapters: dict[str, str]) -> tuple[Any, list[str]]:
    if importlib.util.find_spec("peft") is None:
        raise UnsupportedError("PEFT adapters need peft: pip install 'palestra[peft]'")
    from peft import PeftModel

    names = list(adapters)
    first = names[0]
    peft_model = PeftModel.from_pretrained(model, adapters[first], adapter_name=first)
    for name in names[1:]:
        peft_model.load_adapter(adapters[name], adapter_name=name)
    peft_model.eval()
    logger.info("loaded %d adapter(s) on one base: %s", len(names), ", ".join(names))
    return peft_model, names
