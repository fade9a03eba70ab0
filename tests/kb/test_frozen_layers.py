"""Training the upper layers only: the frozen lower layers' states, computed once, replay exactly what the whole
model computes, and a training run with them leaves the lower layers as shipped."""

from __future__ import annotations

import numpy as np
import pytest

from kb.tuning import Pair, TuningConfig
from tests.kb.tiny_models import tiny_model_dir

TEXTS = ["short", "a much longer text about roof repairs " * 6, "who pays for the scaffolding?", "x"]
QUICK = TuningConfig(epochs=1, batch_size=4, min_items=4, frozen_share=0.5)


@pytest.fixture(params=["bert", "mpnet"])
def four_layers(request, settings, tmp_path_factory, tiny_registered):
    """A tiny random 4-layer model registered as "tiny-4": BERT (layers return a tensor) or MPNet (a tuple)."""
    from kb.embedding import forget_encoder

    root = tmp_path_factory.getbasetemp() / "tiny-models"
    root.mkdir(exist_ok=True)
    settings.KEFU_EMBEDDING_MODELS = {**settings.KEFU_EMBEDDING_MODELS,
                                      "tiny-4": str(tiny_model_dir(root, layers=4, architecture=request.param))}
    yield "tiny-4"
    forget_encoder("tiny-4")


def test_how_many_layers_a_share_freezes_keeps_one_trainable_and_none_where_the_stack_is_unknown(four_layers,
                                                                                                  tiny_registered):
    from kb.frozen_layers import frozen_count
    from kb.tuning import training_model

    # given a 4-layer model and a 1-layer one
    four, one = training_model(four_layers, QUICK), training_model(tiny_registered, QUICK)
    # then a share freezes that many lower layers, never the last one, and a 1-layer stack nothing
    assert [frozen_count(four, share) for share in (0.0, 0.5, 0.75, 1.0)] == [0, 2, 3, 3]
    assert frozen_count(one, 0.5) == 0


def test_the_replayed_upper_layers_give_the_whole_models_vectors_in_any_batch(four_layers):
    from kb.tuning import encode, lower_states, training_model

    # given the lower layers' states of texts of very different lengths, computed in one batch
    model = training_model(four_layers, QUICK)
    cache = lower_states(model, QUICK, TEXTS)
    assert cache is not None and cache.count == 2 and len(cache) == len(TEXTS)
    # when the texts are encoded from the states, two at a time (other padding than when they were stored)
    replayed = encode(model, TEXTS, batch_size=2, cache=cache)
    # then each vector is the whole model's, and the model's own layers are back in place afterwards
    assert np.allclose(replayed, encode(model, TEXTS), atol=1e-5)
    from kb.frozen_layers import layer_stack

    assert len(layer_stack(model)) == 4


def test_training_from_the_states_moves_only_the_upper_layers(four_layers):
    from kb.tuning import lower_states, train_model, training_model

    # given the start model and the states of every training text
    pairs = [Pair(f"question {n} about {topic}", f"the answer on {topic} is {n}", f"faq:{n}", True)
             for n, topic in enumerate(["roofs", "windows", "permits", "radon", "tax", "noise", "wells", "paint"])]
    start = training_model(four_layers, QUICK)
    cache = lower_states(start, QUICK, [text for pair in pairs for text in (pair.query, pair.target)])
    initial = {name: value.clone() for name, value in start.state_dict().items()}
    # when a short training runs from them
    trained = train_model(four_layers, pairs, QUICK, lambda *_: None, cache=cache).state_dict()
    # then the embeddings and layers 0-1 are as shipped, and layers 2-3 moved
    changed = {name for name, value in initial.items() if value.is_floating_point() and not value.equal(trained[name])}
    assert changed
    assert not {name for name in changed if "embeddings" in name or ".layer.0." in name or ".layer.1." in name}
    assert any(".layer.3." in name for name in changed)


def test_no_share_and_lora_train_every_layer(four_layers):
    from dataclasses import replace

    from kb.tuning import lower_states, training_model

    # given the whole-model setting and the LoRA method
    model = training_model(four_layers, QUICK)
    # then neither computes lower states (everything trains, as before)
    assert lower_states(model, replace(QUICK, frozen_share=0.0), TEXTS) is None
    assert lower_states(model, replace(QUICK, method="lora"), TEXTS) is None
