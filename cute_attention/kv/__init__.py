"""Where rows of K and V (and PackGQA's rows of Q and O) live: KV cache layouts and the row sources they hand to
the gmem iterators."""

from cute_attention.kv.linear import LinearKVCache
from cute_attention.kv.pack_gqa import PackedRows
from cute_attention.kv.paged import PAGED_BLOCK_SIZES, PagedKVCache

__all__ = ["LinearKVCache", "PAGED_BLOCK_SIZES", "PackedRows", "PagedKVCache"]
