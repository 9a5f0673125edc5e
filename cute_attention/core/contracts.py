"""The contracts between building blocks, as code.

A kernel variant is one choice of each block; the kernel objects call the blocks only through these protocols
(``typing.Protocol``, checked at run time by ``tests/test_contracts.py`` for every registered block, and listed
member by member in ``docs/composing.md``). A block states what it can do by a declared member (``q_in_regs``,
``paged``, ``reads``), never by the caller probing for attributes or types.

Device-side members are ``@cute.jit`` functions called while a kernel is traced; host-side members are plain
Python. :class:`MainloopArgs` is what the kernel object hands a mainloop strategy for one CTA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cute_attention.core.index_math import TileSchedule
from cute_attention.core.masks import MaskSpec


@runtime_checkable
class ImplRecipe(Protocol):
    """A frozen, hashable choice of one MMA family's tiles and knobs (part of the compile key); ``build`` makes the
    Impl for one dtype and head dim (TurboMind's ``Impl<MMA_*, T, ..., HeadDim>`` template arguments)."""

    family: str
    tile_m: int
    tile_n: int
    warps_q: int
    warps_s: int
    kv_quant_kinds: tuple[str, ...]  # quantized KV formats the Impl dequantizes (``build(..., kv_quant=)``)

    @property
    def threads(self) -> int: ...

    def build(self, dtype, head_dim: int) -> Impl: ...

    def describe(self) -> str: ...


@runtime_checkable
class ImplState(Protocol):
    """Per-thread partitions an Impl builds once per CTA; the epilogue and the merge read these members."""

    tq: Any  # thread index inside its KV-slice group
    ws: Any  # KV-slice group of this thread (0 when warps_s == 1)
    tScS_mn: Any  # (rows, cols) tile coordinates of this thread's scores
    t0ScS_mn: Any  # the same for thread 0 (compile-time columns)
    tOcO_mn: Any  # (rows, cols) tile coordinates of this thread's outputs


@runtime_checkable
class Impl(Protocol):
    """The math of one MMA family (TurboMind's ``Impl``): fragments, the shared-memory tiles it reads, the per-tile
    products and softmax step, the cross-warp merge and the store of O. Knows nothing of where tiles come from."""

    dtype: Any
    head_dim: int
    tile_m: int
    tile_n: int
    warps_s: int
    threads: int
    group_threads: int
    q_in_regs: bool  # Q's fragments stay in registers: its shared memory may join the K/V ring
    mma_sass: str | None  # the SASS form every MMA must take, or None
    sass_required: tuple[str, ...]
    sass_forbidden: tuple[str, ...]

    def q_tile(self, ptr) -> Any: ...

    def kv_slot_bytes(self) -> int: ...

    def kv_ring(self, ptr, slots: int) -> Any: ...

    def merge_bytes(self) -> int: ...

    def scratch_bytes(self) -> int: ...

    def make_state(self, tidx, sQ, sKV, scratch) -> ImplState: ...

    def load_q_regs(self, st) -> None: ...

    def make_acc_O(self, st) -> Any: ...

    def make_softmax(self, scale_log2, acc_O) -> Any: ...

    def compute_qk(self, st, slot) -> Any: ...

    def mask_scores(self, st, acc_S, q_start, n_tile, seqlen_q, seqlen_k, window_left, window_right, mask,
                    group=1) -> None: ...

    def softmax_step(self, softmax, acc_S, acc_O, is_first) -> None: ...

    def convert_p(self, st, acc_S) -> Any: ...

    def compute_pv(self, st, tOrP, acc_O, slot) -> None: ...

    def merge(self, st, softmax, acc_O, smem_merge) -> None: ...

    def store_o(self, st, acc_O, sO) -> None: ...

    def rows_cols_view(self, acc) -> Any: ...

    def partition_O(self, st, t) -> Any: ...


@runtime_checkable
class MainloopStrategy(Protocol):
    """A pipeline strategy over KV tiles (TurboMind's ``Mainloop<Strategy, Impl>``): how Q and the K/V tiles reach
    shared memory and how loads overlap the Impl's math, walking the tiles in three phases."""

    name: str
    stages: int
    kv_slots: int  # K/V tiles its ring holds in shared memory
    warp_specialized: bool  # False: every warp loads and computes (kernels/attention.py's body)
    kv_quant: bool  # takes a combined iterator (quantized K/V data + parameters) through gmem_iterator's interface
    sass_required: tuple[str, ...]
    sass_forbidden: tuple[str, ...]

    def gmem_iterator(self, dtype, rows: int, cols: int, threads: int) -> Any: ...

    def load_q(self, it, part, row_limit) -> None: ...

    def wait_q(self) -> None: ...

    def run(self, a: MainloopArgs) -> None: ...

    def describe(self) -> str: ...


@runtime_checkable
class WarpgroupImpl(Protocol):
    """The math of a warpgroup-MMA family (Hopper): products are issued and waited for separately, so a
    warp-specialized strategy chooses what overlaps; P stays in registers as the A operand of P·V. Keeps the members
    the epilogue reads (``rows_cols_view``, ``partition_O``, ``store_o``, ``merge``, ``warps_s``)."""

    dtype: Any
    head_dim: int
    tile_m: int
    tile_n: int
    warps_s: int
    threads: int  # the consumer warp groups' threads
    consumer_wgs: int
    mma_sass: str | None
    sass_required: tuple[str, ...]
    sass_forbidden: tuple[str, ...]

    def smem_layout(self, rows: int, stages: int | None = None) -> Any: ...

    def merge_bytes(self) -> int: ...

    def make_state(self, tidx, sQ, sK, sV) -> ImplState: ...

    def make_acc_O(self, st) -> Any: ...

    def make_softmax(self, scale_log2, acc_O) -> Any: ...

    def make_p(self, st) -> Any: ...

    def issue_qk(self, st, stage) -> Any: ...

    def issue_pv(self, st, tOrP, acc_O, stage) -> None: ...

    def wait(self, pending) -> None: ...

    def mask_scores(self, st, acc_S, q_start, n_tile, seqlen_q, seqlen_k, window_left, window_right, mask,
                    group=1) -> None: ...

    def convert_p(self, acc_S, tOrP) -> None: ...

    def merge(self, st, softmax, acc_O, smem_merge) -> None: ...

    def store_o(self, st, acc_O, sO) -> None: ...

    def rows_cols_view(self, acc) -> Any: ...

    def partition_O(self, st, t) -> Any: ...


@runtime_checkable
class WarpSpecializedMainloop(Protocol):
    """A warp-specialized pipeline strategy (Hopper): a producer role issues the copies (``produce``), consumer
    warp groups run a :class:`WarpgroupImpl` over the tiles (``consume``), both in the same three-phase walk."""

    name: str
    stages: int
    kv_slots: int
    warp_specialized: bool  # True: the kernel object builds the warp-specialized body (kernels/attention_ws.py)
    kv_quant: bool  # moves quantized K/V (a combined iterator)
    sass_required: tuple[str, ...]
    sass_forbidden: tuple[str, ...]

    def produce(self, sched, pipe_q, pipe_k, pipe_v, load_q, load_k, load_v) -> None: ...

    def consume(self, a) -> None: ...

    def describe(self) -> str: ...


@runtime_checkable
class RowSource(Protocol):
    """Rows of a tile that are not one strided run in memory (a paged cache's K/V, PackGQA's Q and O):
    ``locate`` issues the reads a row's address needs, ``view`` builds the ``(rows, cols)`` view from them."""

    reads: bool  # locate() reads memory (a block table): a mainloop may issue it a load ahead

    def locate(self, n, rel) -> Any: ...

    def view(self, n, rel, key) -> Any: ...


@runtime_checkable
class KVCacheLayout(Protocol):
    """Where the K/V tiles of one (batch, KV head) come from (TurboMind's cache iterator factories)."""

    name: str
    paged: bool  # tiles() returns a row source and the kernel takes a block table
    seqlens: bool  # sequence lengths come from a (batch,) tensor, clamped to the capacity
    block_size: int  # tokens per block (0: contiguous)

    def tiles(self, m, batch, kv_head, tile_n: int, head_dim: int, block_table=None) -> Any: ...

    def capacity(self, m, block_table=None) -> Any: ...

    def token_row(self, m, block_table, batch, token) -> Any: ...


@runtime_checkable
class CtaMap(Protocol):
    """Grid <-> (query tile, head, batch, KV split) (TurboMind's ``AttentionCtaMap``)."""

    def for_mask(self, mask: MaskSpec) -> CtaMap: ...

    def grid(self, num_q_tiles, num_heads, batch, num_splits=1) -> tuple: ...

    def tile_coords(self, num_q_tiles, num_splits, split_kv) -> tuple: ...


@runtime_checkable
class RowOp(Protocol):
    """An operation of the prologue slot on rows in registers, between their global load and their store
    (``frag`` and ``coords``: the thread's values and their (row, col) coordinates; ``where``: the kernel's
    record of what those rows are, e.g. :class:`~cute_attention.kernels.prologue.QRows`). Frozen and hashable:
    part of the compile key."""

    def apply(self, frag, coords, where) -> None: ...


@dataclass(frozen=True)
class MainloopArgs:
    """Everything one CTA's mainloop reads (built by the kernel object's prologue)."""

    impl: Impl
    st: ImplState
    softmax: Any  # OnlineSoftmax
    acc_O: Any
    it: Any  # the strategy's gmem iterator of K/V tiles
    k_part: Any  # CopyPartition of K tiles into the ring
    v_part: Any  # CopyPartition of V tiles into the ring
    sched: TileSchedule
    q_start: Any
    seqlen_q: Any
    seqlen_k: Any
    window_left: Any
    window_right: Any
    mask: MaskSpec
    group: Any = 1  # 1, or the query heads packed into the tile's rows (PackGQA; see index_math.query_positions)
