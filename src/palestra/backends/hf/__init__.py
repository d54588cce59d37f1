"""The Hugging Face transformers backend: loading (devices, dtypes, multi-GPU, 8-bit, PEFT),
token sampling, stop handling and the decode loop."""
