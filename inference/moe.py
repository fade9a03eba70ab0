"""MoE routing telemetry: how many tokens each expert of each layer received.

Forward hooks on the router ("gate") of every sparse-MoE block count, per request
and per layer, the tokens routed to each expert. The engine tells the counter which
request owns each row of the batch before every forward pass
(:meth:`ExpertCounter.set_owners`), and takes a request's counts when it finishes
(:meth:`ExpertCounter.pop`). :class:`ExpertLoadWindow` keeps a rolling per-worker
aggregate with the load-imbalance figures the dashboard and metrics show:
max/mean and the coefficient of variation of tokens per expert.

Recognised families (transformers classes): Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE,
DeepSeek-V2, DeepSeek-V3. Their routers return ``(router_logits, topk_weights,
topk_ids)``; a router that returns bare ``router_logits`` (older transformers) is
counted through :func:`select_experts` (softmax top-k). A dense model has no router,
so :func:`attach_expert_counter` returns None and nothing is reported.

N routed tokens, E experts (num_experts), K experts per token (top_k), L MoE layers.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass

MOE_BLOCK_CLASSES = {
    "MixtralSparseMoeBlock", "Qwen2MoeSparseMoeBlock", "Qwen3MoeSparseMoeBlock", "OlmoeSparseMoeBlock",
    "DeepseekV2Moe", "DeepseekV2MoE", "DeepseekV3MoE",
}
LAYER_INDEX = re.compile(r"layers\.(\d+)\.")


def select_experts(router_logits, top_k: int):
    """Softmax top-k routing: router_logits (N, E) → (topk_weights (N, K), topk_ids (N, K))."""
    import torch  # lazy: routing telemetry is imported by processes without torch

    routing_weights = torch.softmax(router_logits.float(), dim=-1)  # N, E
    return torch.topk(routing_weights, top_k, dim=-1)  # (N, K), (N, K)


def router_modules(model) -> list[tuple[int, object, int, int]]:
    """(layer index, router module, num_experts, top_k) for each sparse-MoE block, in layer order."""
    found = []
    for name, module in model.named_modules():
        if type(module).__name__ not in MOE_BLOCK_CLASSES or not hasattr(module, "gate"):
            continue
        match = LAYER_INDEX.search(name + ".")
        gate = module.gate
        num_experts = getattr(gate, "num_experts", None) or getattr(gate, "n_routed_experts", None) \
            or gate.weight.shape[0]
        top_k = getattr(gate, "top_k", None) or getattr(module, "top_k", None)
        found.append((int(match.group(1)) if match else len(found), gate, int(num_experts), int(top_k)))
    return sorted(found, key=lambda item: item[0])


def topk_ids_of(output, top_k: int):
    """The router's topk_ids (N, K) from whatever its forward returned."""
    import torch  # lazy: routing telemetry is imported by processes without torch

    if isinstance(output, tuple):
        for item in output:
            if torch.is_tensor(item) and not item.is_floating_point():
                return item  # N, K
        output = output[0]
    _, topk_ids = select_experts(output.reshape(-1, output.shape[-1]), top_k)  # N, K
    return topk_ids


class ExpertCounter:
    """Per-request token counts per MoE layer and expert, filled by router forward hooks."""

    def __init__(self, routers: list[tuple[int, object, int, int]]):
        self.layers = [layer for layer, _, _, _ in routers]
        self.num_experts = max(num_experts for _, _, num_experts, _ in routers)
        self.owners: list[str] = []
        self.counts: dict[str, list] = {}  # owner → L × E nested lists of ints
        self.lock = threading.Lock()
        self.handles = [
            gate.register_forward_hook(self.hook_for(position, top_k))
            for position, (_, gate, _, top_k) in enumerate(routers)
        ]

    def hook_for(self, position: int, top_k: int):
        def count_tokens(module, inputs, output) -> None:
            self.record(position, topk_ids_of(output, top_k))

        return count_tokens

    def set_owners(self, owners: list[str]) -> None:
        """Which request each routed token (row of hidden_states, in order) belongs to; "" is padding."""
        self.owners = list(owners)

    def record(self, position: int, topk_ids) -> None:
        """Add one router call's choices: topk_ids (N, K), row n owned by ``owners[n]``."""
        import torch  # lazy: routing telemetry is imported by processes without torch

        owners = self.owners if len(self.owners) == topk_ids.shape[0] else ["_unattributed"] * topk_ids.shape[0]
        slots = {owner: slot for slot, owner in enumerate(dict.fromkeys(owners))}
        owner_index = torch.tensor([slots[owner] for owner in owners], device=topk_ids.device)  # N
        per_token = torch.zeros(topk_ids.shape[0], self.num_experts, dtype=torch.long, device=topk_ids.device)
        per_token.scatter_add_(1, topk_ids.long(), torch.ones_like(topk_ids, dtype=torch.long))  # N, E
        per_owner = torch.zeros(len(slots), self.num_experts, dtype=torch.long, device=topk_ids.device)
        per_owner.index_add_(0, owner_index, per_token)  # owners, E
        rows = per_owner.cpu().tolist()
        with self.lock:
            for owner, slot in slots.items():
                if not owner:
                    continue  # padding of a batched prefill: not a real token
                table = self.counts.setdefault(owner, [[0] * self.num_experts for _ in self.layers])
                layer_counts = table[position]
                for expert, tokens in enumerate(rows[slot]):
                    layer_counts[expert] += tokens

    def pop(self, owner: str) -> dict | None:
        """A finished request's counts, as stored on the job and sent in the ``done`` event."""
        with self.lock:
            table = self.counts.pop(owner, None)
        if table is None:
            return None
        return {"layers": list(self.layers), "num_experts": self.num_experts, "counts": table}

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()


def attach_expert_counter(model) -> ExpertCounter | None:
    """Hook every MoE router of ``model``; None for a dense model."""
    routers = router_modules(model)
    return ExpertCounter(routers) if routers else None


@dataclass(frozen=True)
class LayerLoad:
    """One MoE layer's load over the window: tokens per expert and how uneven they are."""

    layer: int
    counts: tuple[int, ...]
    max_over_mean: float  # 1.0 is perfectly balanced; E means one expert took everything
    coefficient_of_variation: float  # std / mean of tokens per expert


def imbalance(counts: list[int]) -> tuple[float, float]:
    """(max/mean, coefficient of variation) of tokens per expert; (0, 0) when nothing was routed."""
    total = sum(counts)
    if not counts or total == 0:
        return 0.0, 0.0
    mean = total / len(counts)
    variance = sum((count - mean) ** 2 for count in counts) / len(counts)
    return max(counts) / mean, variance ** 0.5 / mean


class ExpertLoadWindow:
    """Rolling per-worker aggregate of the expert counts of recent requests."""

    def __init__(self, window_s: float = 300.0, max_requests: int = 10_000):
        self.window_s = window_s
        self.entries: deque[tuple[float, dict]] = deque(maxlen=max_requests)
        self.lock = threading.Lock()

    def add(self, expert_counts: dict | None, *, now: float | None = None) -> None:
        if expert_counts:
            with self.lock:
                self.entries.append((now if now is not None else time.monotonic(), expert_counts))

    def layer_loads(self, *, now: float | None = None) -> list[LayerLoad]:
        """Per-layer totals over the window, with their imbalance."""
        now = now if now is not None else time.monotonic()
        with self.lock:
            while self.entries and self.entries[0][0] < now - self.window_s:
                self.entries.popleft()
            entries = [counts for _, counts in self.entries]
        totals: dict[int, list[int]] = {}
        for counts in entries:
            for layer, row in zip(counts["layers"], counts["counts"], strict=True):
                total = totals.setdefault(layer, [0] * len(row))
                for expert, tokens in enumerate(row):
                    total[expert] += tokens
        return [LayerLoad(layer, tuple(row), *imbalance(row)) for layer, row in sorted(totals.items())]
