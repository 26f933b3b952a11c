"""GPTQ W4A16 with llm-compressor, run by `quantize --method w4a16` in its own virtual environment.

llm-compressor 0.14 pins transformers<=5.17 and huggingface_hub 1.x, which the app's environment
does not accept, so this file runs as a script under `.venv-quantize/bin/python` and imports only
what that environment holds (no MedLite modules). The calibration prompts arrive already rendered
by the templates, one JSON string per line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def quantize_w4a16(model_dir: Path, out_dir: Path, calibration_file: Path | None, max_seq_length: int) -> None:
    """GPTQ calibrated on the given prompts; without them, round-to-nearest (same layout, for benchmarks)."""
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
    # The preset W4A16 scheme: symmetric int4 weights, one scale per group of 128 inputs;
    # lm_head stays in its own precision, as vLLM's and TGI's fast kernels expect.
    if calibration_file is None:
        oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme="W4A16", ignore=["lm_head"]))
        model.save_pretrained(out_dir, save_compressed=True)
        return

    from datasets import Dataset

    lines = calibration_file.read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line) for line in lines if line.strip()]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    oneshot(
        model=model,
        tokenizer=tokenizer,
        dataset=Dataset.from_dict({"text": texts}),
        recipe=GPTQModifier(targets="Linear", scheme="W4A16", ignore=["lm_head"]),
        max_seq_length=max_seq_length,
        num_calibration_samples=len(texts),
        shuffle_calibration_samples=False,
    )
    model.save_pretrained(out_dir, save_compressed=True)
    tokenizer.save_pretrained(out_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--calibration", type=Path, help="JSON lines, one prompt text per line: GPTQ")
    data.add_argument("--data-free", action="store_true", help="round-to-nearest, no calibration")
    parser.add_argument("--max-seq-length", type=int, default=512)
    args = parser.parse_args()
    quantize_w4a16(args.model, args.out, args.calibration, args.max_seq_length)


if __name__ == "__main__":
    main()
