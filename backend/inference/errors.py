"""The one family of inference failures; each carries a sentence fit to show a clinician."""

from __future__ import annotations


class InferenceError(Exception):
    """Base class. `user_message` (and `user_message_zh`) is plain language for the clinician;
    `str(exc)` keeps the technical detail for the log."""

    user_message = "The model could not answer. Please try again."
    user_message_zh = "模型未能作答，请重试。"
    retryable = False

    def __init__(
        self, detail: str = "", *, user_message: str | None = None, user_message_zh: str | None = None
    ) -> None:
        super().__init__(detail or self.user_message)
        if user_message is not None:
            self.user_message = user_message
        if user_message_zh is not None:
            self.user_message_zh = user_message_zh

    def message_in(self, language: str) -> str:
        """The sentence for the clinician in their language (Chinese or English)."""
        return self.user_message_zh if language == "zh" else self.user_message


class ServerBusy(InferenceError):
    user_message = "The model server is busy with other requests. Please try again in a moment."
    user_message_zh = "模型服务器正忙于处理其他请求，请稍后重试。"
    retryable = True


class InputTooLong(InferenceError):
    user_message = "The question is too long for the model. Please shorten the text and try again."
    user_message_zh = "问题内容超出模型可处理的长度，请精简后重试。"


class ServerUnavailable(InferenceError):
    user_message = "The model server is not reachable or is still loading. Please try again shortly."
    user_message_zh = "无法连接模型服务器，或服务器仍在加载，请稍后重试。"
    retryable = True


class InferenceTimeout(InferenceError):
    user_message = "The model took too long to answer. Please try again."
    user_message_zh = "模型响应超时，请重试。"
    retryable = True


class StreamInterrupted(InferenceError):
    """The stream broke after it had started: the partial text is kept and marked incomplete."""

    user_message = "The answer was cut off before it finished; what arrived is shown and marked incomplete."
    user_message_zh = "回答在完成前中断；已收到的部分已显示并标记为不完整。"


class ModelNotLoaded(InferenceError):
    user_message = (
        "No model is loaded. Set MEDLITE_MODEL to a local model folder (or a hub id when online), "
        "or set MEDLITE_BACKEND_URL to an OpenAI-compatible server such as TGI, then restart MedLite."
    )
    user_message_zh = (
        "尚未加载模型。请将 MEDLITE_MODEL 设为本地模型目录（联网时可用模型库 ID），"
        "或将 MEDLITE_BACKEND_URL 设为兼容 OpenAI 接口的服务器（如 TGI），然后重启 MedLite。"
    )
