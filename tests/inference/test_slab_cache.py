"""SlabLayer: the engine's KV cache layer writes new columns in place and reads like a concatenation."""

from __future__ import annotations

import torch

from inference.backends.slab_cache import GROW_COLUMNS, SlabLayer, slab_cache


def columns(count: int, *, rows: int = 2, dim: int = 4, start: float = 0.0) -> torch.Tensor:
    """Distinct keys (rows, 3 heads, count, dim), so a misplaced column shows."""
    return torch.arange(rows * 3 * count * dim, dtype=torch.float32).reshape(rows, 3, count, dim) + start


def test_updates_read_as_the_concatenation_across_a_growth():
    # given a layer prefilled with 5 columns
    layer = SlabLayer()
    prompt_keys, prompt_values = columns(5), columns(5, dim=6, start=1000)
    layer.update(prompt_keys, prompt_values)
    capacity = layer._keys.shape[-2]

    # when more single columns than the spare room are written (one decode step each)
    steps = [(columns(1, start=10_000 + step), columns(1, dim=6, start=20_000 + step))
             for step in range(GROW_COLUMNS + 3)]
    for key, value in steps:
        keys, values = layer.update(key, value)

    # then keys/values equal what torch.cat would have built, and the slab grew once, not per step
    assert torch.equal(keys, torch.cat([prompt_keys, *(key for key, _ in steps)], dim=-2))
    assert torch.equal(values, torch.cat([prompt_values, *(value for _, value in steps)], dim=-2))
    assert layer.get_seq_length() == 5 + GROW_COLUMNS + 3
    assert layer._keys.shape[-2] > capacity


def test_a_decode_step_writes_in_place_without_copying_the_cache():
    layer = SlabLayer()
    layer.update(columns(7), columns(7))
    storage = layer._keys.data_ptr()
    keys, _ = layer.update(columns(1, start=5), columns(1, start=5))
    assert layer._keys.data_ptr() == storage and keys.data_ptr() == storage


def test_reassigning_keys_then_values_keeps_each_consistent():
    # given a filled layer (rows 0 and 1, 6 columns)
    layer = SlabLayer()
    keys, values = columns(6), columns(6, start=500)
    layer.update(keys, values)

    # when the engine evicts row 0 and trims the first 2 columns, keys first, then values
    layer.keys = layer.keys[1:, :, 2:]
    layer.values = layer.values[1:, :, 2:]

    # then both hold exactly row 1's last 4 columns, and a new step appends after them
    assert torch.equal(layer.keys, keys[1:, :, 2:]) and torch.equal(layer.values, values[1:, :, 2:])
    new_keys, _ = layer.update(columns(1, rows=1, start=-1), columns(1, rows=1, start=-2))
    assert torch.equal(new_keys, torch.cat([keys[1:, :, 2:], columns(1, rows=1, start=-1)], dim=-2))


def test_the_cache_creates_slab_layers_on_first_use():
    cache = slab_cache()
    cache.update(columns(3), columns(3), layer_idx=1)
    assert [type(layer) for layer in cache.layers] == [SlabLayer, SlabLayer]
    assert cache.get_seq_length(1) == 3
