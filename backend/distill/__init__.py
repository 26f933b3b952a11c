"""Knowledge distillation: fine-tuned teacher -> LoRA student (issue 4)."""
