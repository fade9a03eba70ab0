"""A KV cache whose layers live in preallocated slabs: a decode step writes one column in place.

transformers' ``DynamicLayer`` grows by ``torch.cat`` every step, so each decode step copies every
layer's whole keys and values (batch 8 × 300 tokens × 30 layers of SmolLM2: ~120 MB of copying per
step, a fifth of the weights' bytes). A :class:`SlabLayer` keeps them in a ``(B, H, capacity, D)``
buffer with spare columns, writes new columns with ``copy_`` and returns views of the filled part;
the buffer is reallocated only when it is full (``GROW_COLUMNS`` at a time) or when the engine
reshapes the batch (a request joins or leaves), which happens once per request, not once per token.

torch and transformers are imported at module level: only the engine (a generating process) imports it.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer

GROW_COLUMNS = 128  # spare columns allocated at a time: one reallocation per 128 decode steps


class SlabLayer(DynamicLayer):
    """One layer's keys/values (B, H, L, D) as views of a (B, H, capacity, D) slab."""

    def __init__(self, **kwargs):
        self._keys: torch.Tensor | None = None  # B, H, capacity, D
        self._values: torch.Tensor | None = None  # B, H, capacity, Dv
        self._key_length = self._value_length = 0  # filled columns of each slab
        super().__init__(**kwargs)

    # ``keys``/``values`` read as the filled views; assigning one replaces its slab (merge, evict, padding),
    # so the engine may reassign keys then values (each read of the other still sees its old filling).
    @property
    def keys(self) -> torch.Tensor | None:
        return None if self._keys is None else self._keys[:, :, : self._key_length]

    @keys.setter
    def keys(self, tensor: torch.Tensor | None) -> None:
        self._keys, self._key_length = slab_of(tensor), 0 if tensor is None else int(tensor.shape[-2])

    @property
    def values(self) -> torch.Tensor | None:
        return None if self._values is None else self._values[:, :, : self._value_length]

    @values.setter
    def values(self, tensor: torch.Tensor | None) -> None:
        self._values, self._value_length = slab_of(tensor), 0 if tensor is None else int(tensor.shape[-2])

    @property
    def length(self) -> int:
        return self._key_length

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.keys = key_states[:, :, :0]
        self.values = value_states[:, :, :0]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Write the new columns in place; returns the filled keys and values (views)."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, new = self._key_length, int(key_states.shape[-2])
        self.reserve(start + new)
        self._keys[:, :, start : start + new].copy_(key_states)
        self._values[:, :, start : start + new].copy_(value_states)
        self._key_length = self._value_length = start + new
        return self.keys, self.values

    def reserve(self, columns: int) -> None:
        """Make room for ``columns`` filled columns (reallocating with spare ones when full)."""
        if columns > self._keys.shape[-2]:
            self._keys = grow(self._keys, self._key_length, columns)
        if columns > self._values.shape[-2]:
            self._values = grow(self._values, self._value_length, columns)

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0


def slab_of(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """A fresh contiguous slab holding ``tensor`` (B, H, L, D) followed by spare columns."""
    if tensor is None:
        return None
    return grow(tensor, int(tensor.shape[-2]), int(tensor.shape[-2]))


def grow(slab: torch.Tensor, length: int, columns: int) -> torch.Tensor:
    """A new slab with room for ``columns`` + spare; the first ``length`` columns copied over."""
    batch, heads, _, dim = slab.shape
    fresh = slab.new_empty(batch, heads, columns + GROW_COLUMNS, dim)
    fresh[:, :, :length].copy_(slab[:, :, :length])
    return fresh


def slab_cache() -> Cache:
    """An empty cache whose layers (created on first use) are :class:`SlabLayer`."""
    return Cache(layer_class_to_replicate=SlabLayer)
