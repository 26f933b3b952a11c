"""Time to first token and total time, through the MedLite app against the model server directly.

Both paths send the same rendered prompt, alternating, in one run; the ratios are what to read
(absolute times depend on the machine). Start a model server and the app first, for instance:

    python -m backend make-tiny-model --out var/tiny
    transformers serve var/tiny --host 127.0.0.1 --port 8000 &
    MEDLITE_BACKEND_URL=http://127.0.0.1:8000/v1 MEDLITE_MODEL=var/tiny python app.py &
    python benchmarks/app_overhead.py --base-url http://127.0.0.1:8000/v1 --model var/tiny \\
        --app-url http://127.0.0.1:7860/ --rounds 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradio_client import Client  # noqa: E402

from backend.inference.remote import RemoteEngine  # noqa: E402
from backend.inference.types import GenerationParams  # noqa: E402
from templates import get_template, render_prompt  # noqa: E402


def time_direct(engine: RemoteEngine, prompt: str, params: GenerationParams) -> tuple[float, float]:
    start = time.perf_counter()
    first = None
    for delta in engine.stream(prompt, params):
        if first is None and delta.text:
            first = time.perf_counter() - start
    return first or float("nan"), time.perf_counter() - start


def time_app(client: Client, question_type: str, fields: dict) -> tuple[float, float]:
    start = time.perf_counter()
    first = None
    job = client.submit(question_type=question_type, language="en", fields=fields, api_name="/consult")
    for partial in job:
        if first is None and (partial["reasoning"] or partial["answer"]):
            first = time.perf_counter() - start
    final = job.result()
    if final["error"]:
        raise SystemExit(f"the app answered with an error: {final['error']}")
    return first or float("nan"), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True, help="the model server the app uses")
    parser.add_argument("--model", help="model name for servers that want one (transformers serve)")
    parser.add_argument("--app-url", required=True)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=48, help="must match MEDLITE_MAX_NEW_TOKENS of the app")
    args = parser.parse_args()

    template = get_template("diagnosis", "en")
    fields = dict(template.examples[0].fields)
    prompt = render_prompt(template, fields)
    params = GenerationParams(max_tokens=args.max_tokens)
    engine = RemoteEngine(args.base_url, model=args.model)
    client = Client(args.app_url, verbose=False)
    time_direct(engine, prompt, params)  # warm both paths
    time_app(client, "diagnosis", fields)

    direct, app = [], []
    for _ in range(args.rounds):
        direct.append(time_direct(engine, prompt, params))
        app.append(time_app(client, "diagnosis", fields))

    def median(samples: list[tuple[float, float]], index: int) -> float:
        return statistics.median(sample[index] for sample in samples)

    print(f"{'path':<22}{'TTFT median s':>15}{'total median s':>16}")
    print(f"{'server directly':<22}{median(direct, 0):>15.3f}{median(direct, 1):>16.3f}")
    print(f"{'through the app':<22}{median(app, 0):>15.3f}{median(app, 1):>16.3f}")
    print(f"{'app / direct':<22}{median(app, 0) / median(direct, 0):>15.2f}{median(app, 1) / median(direct, 1):>16.2f}")
    print(f"({args.rounds} rounds each, alternating, max_tokens {args.max_tokens})")


if __name__ == "__main__":
    main()
