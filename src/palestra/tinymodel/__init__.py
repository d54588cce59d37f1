"""Palestra Tiny: the small chat model Palestra ships so every command works with no
download. `world` holds what it knows, `corpus` turns that into pretraining text,
conversations and held-out questions, `build` trains tokenizer and model, `evaluate`
measures exact-answer accuracy on held-out questions."""
