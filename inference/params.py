"""The values a generation request is made of, and their validation.

``SamplingParams`` and ``GenerationRequest`` are frozen dataclasses that flow from
``inference.services`` through the task to the engine. Validation lives here, in
one place, so the web side (at submit) and the engine (at run time) refuse the same
things with the same message: :class:`InvalidGenerationRequest` is a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

ROLES = ("system", "user", "assistant", "tool")
MAX_STOP_SEQUENCES = 8


class InvalidGenerationRequest(ValueError):
    """A request the engine will not run: the message says which value and what is accepted."""


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens. temperature 0 means greedy decoding."""

    temperature: float = 0.7  # 0..2; 0 is greedy (argmax)
    top_p: float = 0.95  # (0, 1]; nucleus sampling mass
    max_new_tokens: int = 256  # 1..KEFU_MAX_NEW_TOKENS
    stop: tuple[str, ...] = ()  # generation ends before the first of these strings
    seed: int | None = None  # fixes the sampling noise of this request when set

    def as_dict(self) -> dict:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens,
                "stop": list(self.stop), "seed": self.seed}


@dataclass(frozen=True)
class GenerationRequest:
    """One chat completion to run: who asked (id), what (messages), how (params)."""

    request_id: str
    messages: tuple[dict, ...]
    params: SamplingParams = field(default_factory=SamplingParams)
    submitted_at: float = 0.0  # time.time() when the job was queued, for queue time


def sampling_params(raw: SamplingParams | Mapping | None, *, max_new_tokens_cap: int) -> SamplingParams:
    """Validated SamplingParams from a dataclass or a mapping (unknown keys are refused)."""
    if raw is None:
        raw = {}
    if isinstance(raw, SamplingParams):
        raw = raw.as_dict()
    unknown = set(raw) - {"temperature", "top_p", "max_new_tokens", "stop", "seed"}
    if unknown:
        raise InvalidGenerationRequest(f"unknown sampling parameter(s): {', '.join(sorted(unknown))}")
    defaults = SamplingParams()
    temperature = number(raw.get("temperature", defaults.temperature), "temperature")
    top_p = number(raw.get("top_p", defaults.top_p), "top_p")
    max_new_tokens = raw.get("max_new_tokens", min(defaults.max_new_tokens, max_new_tokens_cap))
    if not 0.0 <= temperature <= 2.0:
        raise InvalidGenerationRequest(f"temperature={temperature} is out of range: use 0 (greedy) to 2")
    if not 0.0 < top_p <= 1.0:
        raise InvalidGenerationRequest(f"top_p={top_p} is out of range: use a value in (0, 1]")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise InvalidGenerationRequest(f"max_new_tokens={max_new_tokens!r} must be an integer")
    if not 1 <= max_new_tokens <= max_new_tokens_cap:
        raise InvalidGenerationRequest(
            f"max_new_tokens={max_new_tokens} is out of range: use 1 to {max_new_tokens_cap} (KEFU_MAX_NEW_TOKENS)"
        )
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidGenerationRequest(f"seed={seed!r} must be an integer or null")
    return SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                          stop=stop_sequences(raw.get("stop", ())), seed=seed)


def number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidGenerationRequest(f"{name}={value!r} must be a number")
    return float(value)


def stop_sequences(raw) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, Sequence) or not all(isinstance(item, str) and item for item in raw):
        raise InvalidGenerationRequest("stop must be a string or a list of non-empty strings")
    if len(raw) > MAX_STOP_SEQUENCES:
        raise InvalidGenerationRequest(f"stop has {len(raw)} sequences; at most {MAX_STOP_SEQUENCES} are allowed")
    return tuple(raw)


def chat_messages(raw) -> tuple[dict, ...]:
    """Validated chat messages: a non-empty list of {role, content} with known roles and text content."""
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise InvalidGenerationRequest("messages must be a non-empty list of {role, content} objects")
    messages = []
    for index, message in enumerate(raw):
        if not isinstance(message, Mapping) or set(message) - {"role", "content"}:
            raise InvalidGenerationRequest(f"messages[{index}] must be an object with only role and content")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InvalidGenerationRequest(f"messages[{index}].role={role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise InvalidGenerationRequest(f"messages[{index}].content must be a string")
        messages.append({"role": role, "content": content})
    return tuple(messages)
