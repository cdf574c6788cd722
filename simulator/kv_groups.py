"""KV-cache groups: how vLLM v1 lays a model's layers over one block pool (DESIGN §3).

Modelled on vLLM 0.34 (``vllm/v1/core/kv_cache_planning.py``, ``kv_cache_interface.py``, ``kv_cache_utils.py``):
- Every layer has one KV spec: full attention, or a sliding window. Layers with the same spec are one *type*.
  A model of one type is one group of all its layers (``_get_kv_cache_groups_uniform_type``).
- A hybrid model (``_get_kv_cache_groups_uniform_page_size``): the group size is the layer count of the rarest
  type, or of the commonest when that is under 1.5 × the rarest (gpt-oss-20b: 12 + 12); each type is cut into
  ``cdiv(layers, group_size)`` groups of ``group_size`` layers, the last one padded (Gemma 3's 52 windowed
  layers: 6 groups of 10 holding 9, 9, 9, 9, 8 and 8 layers: 8 layers of padding). So every group's block is the same size.
- One pool of ``capacity // block_bytes`` blocks, ``block_bytes = group_size × block_size × bytes per token
  and layer`` (``_get_kv_cache_bytes_per_block``); a request takes blocks from it for every group: a full group
  ``cdiv(tokens, block_size)``, a window group only the blocks the window still reads
  (``SlidingWindowManager``: blocks wholly before token ``computed − window + 1`` are freed).
- vLLM's "KV cache size: N tokens" (``get_kv_cache_capacity``): ``int(num_blocks / blocks per request at
  max_model_len × max_model_len)``, a window group taking ``cdiv(min(window − 1 + in-flight tokens,
  max_model_len), block_size) + 1`` blocks, in-flight tokens ``max_num_batched_tokens`` × concurrent batches (2
  with async scheduling, 0.34's default).
"""

from __future__ import annotations

from dataclasses import dataclass

from kvsim.simulator.specs import SLIDING_ATTENTION, ModelSpec


@dataclass(frozen=True)
class KVCacheGroup:
    """Layers of one attention type sharing one block table per request."""

    layer_type: str  # FULL_ATTENTION | SLIDING_ATTENTION
    num_layers: int  # model layers in the group (the rest of ``KVCacheLayout.layers_per_group`` is padding)
    sliding_window: int | None = None

    @property
    def is_window(self) -> bool:
        return self.layer_type == SLIDING_ATTENTION


@dataclass(frozen=True)
class KVCacheLayout:
    """The groups of one model on one GPU, and the size of a block, which every group's blocks share."""

    groups: tuple[KVCacheGroup, ...]
    layers_per_group: int
    block_size: int
    kv_bytes_per_token_layer: int

    @property
    def block_bytes(self) -> int:
        return self.layers_per_group * self.block_size * self.kv_bytes_per_token_layer

    @property
    def num_padding_layers(self) -> int:
        return len(self.groups) * self.layers_per_group - sum(g.num_layers for g in self.groups)

    def num_blocks(self, capacity_bytes: int) -> int:
        return capacity_bytes // self.block_bytes

    def blocks_per_request(self, max_model_len: int, max_in_flight_tokens: int) -> int:
        """Blocks a request of ``max_model_len`` tokens holds at most, all groups together (vLLM's
        ``max_memory_usage_bytes`` per group over its page size)."""
        bs, total = self.block_size, 0
        for group in self.groups:
            if group.is_window:
                tokens = min(group.sliding_window - 1 + max_in_flight_tokens, max_model_len)
                total += -(-tokens // bs) + 1
            else:
                total += -(-max_model_len // bs)
        return total

    def kv_cache_size_tokens(self, capacity_bytes: int, max_model_len: int, max_in_flight_tokens: int) -> int:
        """vLLM's logged "GPU KV cache size: N tokens" for ``capacity_bytes`` of KV memory."""
        per_request = self.blocks_per_request(max_model_len, max_in_flight_tokens)
        return int(self.num_blocks(capacity_bytes) / per_request * max_model_len)


def kv_cache_layout(model: ModelSpec, tp: int = 1, block_size: int = 16) -> KVCacheLayout:
    """``model``'s KV-cache groups on one GPU of a ``tp`` group (module docstring)."""
    kinds = list(dict.fromkeys(model.layer_types))  # in order of first appearance, as vLLM groups them
    by_type = {kind: model.layer_types.count(kind) for kind in kinds}
    group_size = min(by_type.values())
    if max(by_type.values()) < 1.5 * group_size:
        group_size = max(by_type.values())
    groups = []
    for kind, num_layers in by_type.items():
        window = model.sliding_window if kind == SLIDING_ATTENTION else None
        num_groups = -(-num_layers // group_size)
        # vLLM deals the layers round-robin (layers[i::num_groups]), so the padding spreads over the groups
        groups += [
            KVCacheGroup(kind, len(range(i, num_layers, num_groups)), window) for i in range(num_groups)
        ]
    return KVCacheLayout(tuple(groups), group_size, block_size, model.kv_bytes_per_token_layer(tp))
