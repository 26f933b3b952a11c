"""Compression: 4-bit checkpoints (bitsandbytes NF4, GPTQ W4A16) with a card for each."""
