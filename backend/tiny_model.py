"""A tiny DeepSeek-R1-shaped model built and trained offline, for tests and smoke runs.

Nothing is downloaded: the byte-level BPE tokenizer is trained here on a built-in corpus, the
Qwen2 weights start random and are trained for a few seconds so that, after the chat template's
generation prompt, the model writes R1's reply shape: reasoning, `</think>`, a short answer, then
end-of-sentence. End-to-end tests can then see both the reasoning and the answer.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm.auto import tqdm
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

# DeepSeek-R1-Distill-Qwen's template without its tool-call branches: an optional system prompt
# right after BOS, user turns, assistant turns with earlier reasoning cut off, and a generation
# prompt that opens the reasoning block.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages if message['role'] == 'system' %}{{ message['content'] }}{%- endfor %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{%- set content = message['content'] %}"
    "{%- if '</think>' in content %}{%- set content = content.split('</think>')[-1] %}{%- endif %}"
    "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{%- endif %}"
)

# How `transformers serve` should parse this model's replies. Without it the server falls back to
# Qwen's markers, misses the assistant turn and streams the prompt back as content. With it the
# server splits the reasoning into `reasoning_content`, like vLLM's deepseek_r1 reasoning parser.
SLIDING_WINDOW = 16
RESPONSE_TEMPLATE = {
    "defaults": {"role": "assistant"},
    "start_anchor": ASSISTANT,
    "fields": {
        "reasoning_content": {"open": THINK_OPEN, "close": THINK_CLOSE, "content": "text"},
        "content": {"close": EOS, "content": "text"},
    },
}

CORPUS = [
    "A 45-year-old man presents with crushing chest pain radiating to the left arm and jaw.",
    "The patient reports fever, productive cough and shortness of breath for three days.",
    "Blood pressure is 160/95 mmHg, heart rate 110 beats per minute, oxygen saturation 91%.",
    "Which of the following is the most likely diagnosis? A. Pneumonia B. Asthma C. Embolism D. Angina",
    "What is the first-line treatment for uncomplicated hypertension in adults?",
    "Metformin is contraindicated in severe renal impairment because of the risk of lactic acidosis.",
    "Warfarin interacts with many antibiotics and increases the risk of bleeding.",
    "Check the dose, the route, the frequency and any allergy before giving a drug.",
    "Myocardial infarction, stroke, sepsis, anaphylaxis and meningitis are emergencies.",
    "Symptoms: headache, nausea, vomiting, dizziness, fatigue, rash, swelling, numbness.",
    "Laboratory results show elevated troponin, leukocytosis and raised C-reactive protein.",
    "Order an electrocardiogram, a chest X-ray, a complete blood count and blood cultures.",
    "The child has a barking cough, stridor and a low-grade fever; the likely cause is croup.",
    "Diabetes mellitus, hypothyroidism, asthma, chronic kidney disease, heart failure.",
    "Triage: call emergency services now, see a doctor today, or manage at home with advice.",
    "Insulin, aspirin, amoxicillin, ibuprofen, paracetamol, atorvastatin, omeprazole, heparin.",
    "The question asks for the best next step in management of this patient.",
    "Let me think about the key findings, the likely cause and the safest next step.",
    "The answer is A. The answer is B. The answer is C. The answer is D. The answer is E.",
    "Please answer the following medical question and explain your reasoning briefly.",
    "She is 32 weeks pregnant with new onset headache, visual changes and proteinuria.",
    "An elderly woman fell at home and now has a shortened, externally rotated leg.",
    "患者男性，45岁，胸痛两小时，伴出汗、恶心。最可能的诊断是什么？",
    "发热、咳嗽、咳痰三天，体温三十九度，听诊右下肺湿啰音。",
    "高血压、糖尿病、冠心病、脑卒中、慢性肾病、哮喘、肺炎。",
    "下列哪项是首选治疗？A. 阿司匹林 B. 胰岛素 C. 抗生素 D. 手术 E. 观察",
    "请根据病史、体格检查和实验室检查结果作出诊断，并说明理由。",
    "药物剂量、用法、禁忌症、不良反应和相互作用。",
    "儿童高热惊厥，应立即就医；如出现呼吸困难，请拨打急救电话。",
    "心电图显示ST段抬高，肌钙蛋白升高，考虑急性心肌梗死。",
    "The quick brown fox jumps over the lazy dog; numbers 0 1 2 3 4 5 6 7 8 9.",
    "Question: Answer: Options: Explanation: Age: Sex: History: Examination: Findings:",
]

REASONING = "Let me think about the key findings, the likely cause and the safest next step."
ANSWER_LETTERS = "ABCDE"


def build_tokenizer(vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on CORPUS: any text, Chinese included, encodes without unknowns."""
    backend = Tokenizer(models.BPE())
    # transformers loads a qwen2 model's tokenizer as Qwen2Tokenizer, which imposes Qwen2's own
    # normalizer and pre-tokenizer; training with the same ones keeps every loader's ids identical.
    qwen2_rules = Qwen2Tokenizer().backend_tokenizer
    backend.normalizer = qwen2_rules.normalizer
    backend.pre_tokenizer = qwen2_rules.pre_tokenizer
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS * 4 + [REASONING], trainer)
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (USER, ASSISTANT)])
    # As in DeepSeek-R1, the think tags are added but not "special": decoding with
    # skip_special_tokens keeps them, so servers and streamers pass them on to be split.
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in (THINK_OPEN, THINK_CLOSE)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=EOS, model_max_length=4096
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.response_template = RESPONSE_TEMPLATE
    return tokenizer


def _random_question(rng: random.Random) -> str:
    """A prompt of varied length and language, so the learnt reply does not depend on it."""
    count = rng.choice([1, 1, 2, 3, 5, 8, 12])
    return " ".join(rng.choice(CORPUS) for _ in range(count))


def _training_batch(
    tokenizer: PreTrainedTokenizerFast, rng: random.Random, size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prompts rendered by the chat template; the loss covers only the reply the model must learn."""
    rows: list[tuple[list[int], int]] = []
    for _ in range(size):
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": _random_question(rng)}], add_generation_prompt=True, tokenize=False
        )
        reply = f"{REASONING}\n{THINK_CLOSE}\n\nThe answer is {rng.choice(ANSWER_LETTERS)}.{EOS}"
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
        rows.append((prompt_ids + reply_ids, len(prompt_ids)))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((size, width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((size, width), dtype=torch.long)
    labels = torch.full((size, width), -100, dtype=torch.long)
    for row, (ids, prompt_len) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        labels[row, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
    return input_ids, attention_mask, labels


def make_tiny_model(
    out: Path, *, layers: int = 2, hidden: int = 64, train_steps: int = 150, seed: int = 0, vocab_size: int = 2048
) -> Path:
    """Build, train and save the tiny model and tokenizer into `out`; returns `out`."""
    if layers < 1:
        raise ValueError(f"layers must be at least 1, got {layers}")
    if hidden < 8 or hidden % 8:
        # 4 attention heads, each with an even size for rotary embeddings.
        raise ValueError(f"hidden must be a positive multiple of 8, got {hidden}")
    if train_steps < 0:
        raise ValueError(f"train_steps must not be negative, got {train_steps}")
    if vocab_size < 512:
        raise ValueError(f"vocab_size must be at least 512 (the byte alphabet and the special tokens), got {vocab_size}")
    out = Path(out)
    tokenizer = build_tokenizer(vocab_size)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        # Every layer sees only the last SLIDING_WINDOW tokens, so what the model learnt on short
        # prompts holds after the app's long rendered templates too (rotary positions are relative).
        use_sliding_window=True,
        sliding_window=SLIDING_WINDOW,
        max_window_layers=0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    rng = random.Random(seed)
    # Matrices this small train fastest on one thread: on a busy two-core machine, thread
    # hand-offs made training several times slower. The caller's setting is restored after.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():  # seed for repeatable weights without touching the caller's RNG
            torch.manual_seed(seed)
            model = Qwen2ForCausalLM(config)
            optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
            model.train()
            for _ in tqdm(range(train_steps), desc="Training the tiny model", unit="step"):
                input_ids, attention_mask, labels = _training_batch(tokenizer, rng, size=8)
                loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        temperature=0.6,
        top_p=0.95,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
