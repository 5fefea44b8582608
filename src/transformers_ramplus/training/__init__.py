"""Fine-tuning: datasets and collators, the papers' losses, the Trainer, PEFT/LoRA adapters, the papers' metrics."""
