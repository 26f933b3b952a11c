"""The page's own words in both languages (template labels come from the templates themselves)."""

from __future__ import annotations

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "MedLite: clinical decision support",
        "question_type": "Question type",
        "language": "Language",
        "example": "Load an example case",
        "preview": "Preview prompt",
        "submit": "Ask MedLite",
        "prompt": "Prompt sent to the model",
        "answer": "Answer",
        "reasoning": "Model reasoning",
        "history": "My consultations",
        "feedback": "Was this answer helpful?",
        "helpful": "Helpful",
        "not_helpful": "Not helpful",
        "comment": "Comment (optional)",
        "send_feedback": "Send feedback",
        "feedback_saved": "Thank you: your feedback was saved.",
        "feedback_nothing": "Ask a question first; feedback applies to the latest answer.",
        "feedback_choose": "Choose helpful or not helpful before sending.",
        "red_flags": "Red flags",
        "incomplete": "Incomplete answer",
        "working": "The model is answering…",
        "disclaimer": (
            "**MedLite supports, and never replaces, clinical judgement.** Answers come from a language "
            "model and may be wrong or out of date. Check doses and decisions against current guidelines "
            "and local protocols. In an emergency, follow your emergency pathway first."
        ),
        "types": "diagnosis:Diagnosis|drug:Drug question|exam:Exam question|triage:Triage",
    },
    "zh": {
        "title": "MedLite：临床决策辅助",
        "question_type": "问题类型",
        "language": "语言",
        "example": "载入示例病例",
        "preview": "预览提示词",
        "submit": "提交给 MedLite",
        "prompt": "发送给模型的提示词",
        "answer": "回答",
        "reasoning": "模型推理过程",
        "history": "我的咨询记录",
        "feedback": "这个回答有帮助吗？",
        "helpful": "有帮助",
        "not_helpful": "没有帮助",
        "comment": "意见（可选）",
        "send_feedback": "提交反馈",
        "feedback_saved": "谢谢，您的反馈已保存。",
        "feedback_nothing": "请先提问；反馈针对最近一次回答。",
        "feedback_choose": "请先选择“有帮助”或“没有帮助”。",
        "red_flags": "危险信号",
        "incomplete": "回答不完整",
        "working": "模型正在回答……",
        "disclaimer": (
            "**MedLite 只辅助而不取代临床判断。** 回答由语言模型生成，可能有误或已过时。"
            "剂量与决策请以现行指南和本院规范为准。紧急情况请先按急救流程处理。"
        ),
        "types": "diagnosis:诊断|drug:用药|exam:考试题|triage:分诊",
    },
}


def text(language: str, key: str) -> str:
    return TEXT.get(language, TEXT["en"])[key]


def question_type_choices(language: str) -> list[tuple[str, str]]:
    """(label, value) pairs for the question-type picker."""
    pairs = (item.split(":", 1) for item in text(language, "types").split("|"))
    return [(label, value) for value, label in pairs]
