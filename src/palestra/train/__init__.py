"""Fine-tuning: conversation data in ShareGPT or OpenAI format, tokenised with the chat
template's own loss mask, optionally packed, trained with transformers' Trainer (full or
LoRA through peft), and saved as a folder that Palestra serves with no flags."""
