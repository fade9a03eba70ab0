"""Training a model's upper layers only, its lower layers' output computed once per text and replayed.

Tuning a base's embedder (:mod:`kb.tuning`) runs the same few thousand texts through the model again and again:
every epoch of each fold's training, each fold's measurement, the shipped model's measurement. With the lower
layers frozen (the embeddings and the first ``count`` transformer layers keep their shipped weights), what they
compute for a text never changes, so it is computed once (:func:`states_compute`) and every later forward pass
starts from it (:func:`replaying`): the stack's first layer is swapped for a module that hands back the stored
states of the batch's texts, and the remaining frozen layers are left out for that pass. Padding is rebuilt from
the batch's attention mask, so a text's positions line up whatever batch it lands in.

Works for encoders that keep their layers in ``encoder.layer`` (BERT, MPNet, RoBERTa, XLM-R, …: the bundled
MiniLM and mpnet); :func:`layer_stack` is None elsewhere and the caller trains the whole model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from kb.embedding import transformer_of


class _Captured(Exception):
    """Raised by the capture hook once the last frozen layer ran: the layers above are not needed."""


@dataclass
class StateCache:
    """The output of the frozen lower layers for each text, without padding: text → (tokens, hidden) tensor."""

    count: int  # frozen transformer layers
    returns_tuple: bool  # whether the stack's layers return (hidden, …) rather than a bare tensor
    states: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.states)

    def missing(self, texts: Sequence[str]) -> list[str]:
        return [text for text in dict.fromkeys(texts) if text not in self.states]


def layer_stack(model):
    """The ``encoder.layer`` module list of a sentence-transformers model's Hugging Face model, or None."""
    transformer, attribute = transformer_of(model)
    encoder = getattr(getattr(transformer, attribute, None), "encoder", None)
    layers = getattr(encoder, "layer", None)
    return layers if layers is not None and len(layers) > 1 else None


def frozen_count(model, share: float) -> int:
    """How many lower layers ``share`` freezes (at least one layer stays trainable; 0 where unsupported)."""
    layers = layer_stack(model)
    if layers is None or share <= 0:
        return 0
    return max(0, min(len(layers) - 1, int(len(layers) * share)))


def freeze(model, count: int) -> None:
    """Stop gradients for the embeddings and the first ``count`` layers."""
    if count <= 0:
        return
    transformer, attribute = transformer_of(model)
    hf_model = getattr(transformer, attribute)
    for parameter in hf_model.embeddings.parameters():
        parameter.requires_grad_(False)
    for layer in layer_stack(model)[:count]:
        for parameter in layer.parameters():
            parameter.requires_grad_(False)


def states_compute(model, texts: Sequence[str], cache: StateCache) -> None:
    """Add the frozen layers' output for ``texts`` (one batch, eval mode) to ``cache``."""
    import torch  # lazy: torch loads only where a model trains

    texts = cache.missing(texts)
    if not texts:
        return
    layers = layer_stack(model)
    captured: dict = {}

    def hook(_module, _inputs, output):
        captured["output"] = output
        raise _Captured

    handle = layers[cache.count - 1].register_forward_hook(hook)
    model.eval()
    features = model.preprocess(list(texts))
    try:
        with torch.no_grad():  # not inference_mode: the states feed training passes later
            model(features)
    except _Captured:
        pass
    finally:
        handle.remove()
    output = captured["output"]
    cache.returns_tuple = isinstance(output, tuple)
    hidden = output[0] if cache.returns_tuple else output  # (B, T, H)
    mask = features["attention_mask"].bool()  # (B, T)
    for row, text in enumerate(texts):
        cache.states[text] = hidden[row][mask[row]].detach().clone()


def replay_module(cache: StateCache):
    """A module that stands in for the stack's first layer: it returns the stored states of the batch's texts
    (``texts`` and ``mask`` set before each pass), padded as the batch is."""
    import torch  # lazy: torch loads only where a model trains

    class Replay(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.texts: list[str] = []
            self.mask = None  # (B, T) bool

        def forward(self, hidden_states, *args, **kwargs):
            states = hidden_states.new_zeros(hidden_states.shape)  # (B, T, H)
            for row, text in enumerate(self.texts):
                states[row][self.mask[row]] = cache.states[text].to(states.dtype)
            return (states,) if cache.returns_tuple else states

    return Replay()


@contextmanager
def replaying(model, cache: StateCache) -> Iterator:
    """Within the block, the model's forward passes start from the cached states: call the yielded
    ``forward(texts)`` → the model's output features for ``texts`` (every text must be in the cache)."""
    transformer, attribute = transformer_of(model)
    encoder = getattr(transformer, attribute).encoder
    original = encoder.layer
    replay = replay_module(cache)
    encoder.layer = type(original)([replay, *original[cache.count:]])

    def forward(texts: Sequence[str]):
        features = model.preprocess(list(texts))
        replay.texts = list(texts)
        replay.mask = features["attention_mask"].bool()
        return model(features)

    try:
        yield forward
    finally:
        encoder.layer = original
