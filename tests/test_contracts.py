"""CPU: every registered block keeps its contract (``cute_attention.core.contracts``), and docs/composing.md's
contract table lists exactly the protocols' members."""

import dataclasses
import os
import re

import cutlass
import pytest

from cute_attention.arch.common.fragment_impl import FragmentState
from cute_attention.arch.common.shared_operand_impl import SharedOperandState
from cute_attention.arch.sm90.wgmma_impl import WgmmaState
from cute_attention.core import contracts as C
from cute_attention.host.registry import REGISTRY
from cute_attention.kernels.abi import DTYPES
from cute_attention.kv import LinearKVCache, PackedRows, PagedKVCache
from cute_attention.kv.paged import PagedSource

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "composing.md")
PROTOCOLS = [C.ImplRecipe, C.Impl, C.ImplState, C.MainloopStrategy, C.WarpgroupImpl, C.WarpSpecializedMainloop,
             C.RowSource, C.KVCacheLayout, C.CtaMap, C.RowOp]


def members(proto) -> set[str]:
    """The names a protocol declares: annotated attributes, methods and properties (its own and its bases')."""
    names = set()
    for klass in proto.__mro__:
        if klass.__module__ != C.__name__:
            continue
        names |= {n for n in getattr(klass, "__annotations__", {}) if not n.startswith("_")}
        names |= {n for n, v in vars(klass).items()
                  if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    return names


@pytest.mark.parametrize("variant", REGISTRY.variants(), ids=[v.name for v in REGISTRY.variants()])
def test_registered_blocks_keep_their_contracts(variant):
    ws = variant.mainloop.warp_specialized
    impl_proto = C.WarpgroupImpl if ws else C.Impl
    assert isinstance(variant.impl, C.ImplRecipe), variant.impl
    assert isinstance(variant.mainloop, C.WarpSpecializedMainloop if ws else C.MainloopStrategy), variant.mainloop
    assert isinstance(variant.kv_cache, C.KVCacheLayout), variant.kv_cache
    assert isinstance(variant.cta_map, C.CtaMap), variant.cta_map
    for dtype in variant.dtypes:
        for d in variant.head_dims:
            assert isinstance(variant.impl.build(DTYPES[dtype], d), impl_proto), (variant.name, dtype, d)


def test_kv_layouts_row_sources_and_states_keep_theirs():
    for layout in (LinearKVCache(), LinearKVCache(seqlens=True), PagedKVCache(16), PagedKVCache(256)):
        assert isinstance(layout, C.KVCacheLayout), layout
    assert isinstance(PagedSource(None, None, 64, 16), C.RowSource)
    assert isinstance(PackedRows(None, 0, 4, 0, 16, 128), C.RowSource)
    assert PagedSource(None, None, 64, 16).reads and not PackedRows(None, 0, 4, 0, 16, 128).reads
    for state in (FragmentState, SharedOperandState, WgmmaState):
        assert members(C.ImplState) <= {f.name for f in dataclasses.fields(state)}, state


def test_a_block_missing_a_member_is_caught():
    impl = REGISTRY.variants()[0].impl.build(cutlass.BFloat16, 128)
    stripped = type("Stripped", (), {n: getattr(impl, n) for n in members(C.Impl) - {"merge"}})()
    assert not isinstance(stripped, C.Impl)


def _doc_table() -> dict[str, set[str]]:
    rows = {}
    for line in open(DOC):
        m = re.match(r"\|\s*`(\w+)`\s*\|([^|]*)\|([^|]*)\|", line)
        if m and hasattr(C, m.group(1)):
            rows[m.group(1)] = set(re.findall(r"`(\w+)`", m.group(3)))
    return rows


def test_docs_contract_table_names_the_same_members():
    table = _doc_table()
    assert set(table) == {p.__name__ for p in PROTOCOLS}, "docs/composing.md must have one row per protocol"
    for proto in PROTOCOLS:
        assert table[proto.__name__] == members(proto), (proto.__name__, table[proto.__name__] ^ members(proto))
