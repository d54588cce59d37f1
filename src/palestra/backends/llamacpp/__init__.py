"""llama.cpp through llama-cpp-python: GGUF models behind the `Backend` seam, and turning
a transformers model folder into a GGUF file."""
