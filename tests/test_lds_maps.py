"""CPU: the warp-step fragment maps of the shared-memory-operand Impls (m8n8k4, SIMT), checked exhaustively.

The m8n8k4 maps are compared with the PTX ISA's fragment formulas for ``mma.m8n8k4`` (.row A, .col or .row
B, .f32 accumulators), with the quad-pairs arranged 2 x 2. The SIMT maps must give every lane exactly the
operands of the outputs it owns, in the order ``ImplSimt.mma`` reads them. For both: accumulators tile
the warp step exactly once, a lane owns the same rows of S and O, and ``row_lanes`` reach exactly the
lanes that share a row (the softmax's shuffles).
"""

from collections import Counter

import pytest

from cute_attention.arch.common.shared_operand_impl import K_STEP
from cute_attention.arch.common.simt_impl import ATOM_SIMT
from cute_attention.arch.sm70.impl884 import ATOM_884

LANES = range(32)


def quad_pair(lane):
    """(row half, column half) of the 16 x 16 warp step that this lane's quad-pair computes."""
    q = (lane >> 2) & 3
    return 8 * (q & 1), 8 * (q >> 1)


def ptx_884(lane, i, operand):
    """PTX ISA fragment formulas of mma.m8n8k4 (f16 A/B, f32 C) for one quad-pair, offset by its place."""
    hi = 4 if lane >= 16 else 0
    qm, qn = quad_pair(lane)
    if operand == "a":  # .row A: (row, k)
        return qm + lane % 4 + hi, i
    if operand == "b_col":  # .col B: (column n, k)
        return qn + lane % 4 + hi, i
    if operand == "b_row":  # .row B: (k, column n)
        return lane % 4, qn + i + hi
    row = (lane & 1) + (i & 2) + hi
    col = (i & 1) + (lane & 2) + (i & 4)
    return qm + row, qn + col


@pytest.mark.parametrize("operand", ["a", "b_col", "b_row", "c_s", "c_o"])
def test_884_maps_match_ptx(operand):
    op = getattr(ATOM_884, operand)
    kind = "c" if operand.startswith("c") else operand
    for lane in LANES:
        for i in range(op.size):
            assert op.coords(lane, i) == ptx_884(lane, i, kind), (operand, lane, i)


@pytest.mark.parametrize("atom", [ATOM_884, ATOM_SIMT], ids=["884", "simt"])
def test_accumulators_tile_the_step_once(atom):
    for op, cols in ((atom.c_s, atom.n_s), (atom.c_o, atom.n_o)):
        seen = Counter(op.coords(lane, i) for lane in LANES for i in range(op.size))
        assert set(seen) == {(m, n) for m in range(atom.m) for n in range(cols)}
        assert set(seen.values()) == {1}


@pytest.mark.parametrize("atom", [ATOM_884, ATOM_SIMT], ids=["884", "simt"])
def test_operands_cover_the_step(atom):
    for op, extent in ((atom.a, (atom.m, K_STEP)), (atom.b_col, (atom.n_s, K_STEP)),
                       (atom.b_row, (K_STEP, atom.n_o))):
        seen = {op.coords(lane, i) for lane in LANES for i in range(op.size)}
        assert seen == {(r, c) for r in range(extent[0]) for c in range(extent[1])}


@pytest.mark.parametrize("atom", [ATOM_884, ATOM_SIMT], ids=["884", "simt"])
def test_rows_and_row_lanes(atom):
    def rows(op, lane):
        return {op.coords(lane, i)[0] for i in range(op.size)}

    for lane in LANES:
        assert rows(atom.c_s, lane) == rows(atom.c_o, lane)
        sharing = {other for other in LANES if rows(atom.c_s, other) & rows(atom.c_s, lane)}
        reached = {lane}
        for offset in atom.row_lanes:
            reached |= {x ^ offset for x in reached}
        assert sharing == reached
        assert all(rows(atom.c_s, other) == rows(atom.c_s, lane) for other in sharing)


def test_simt_lane_holds_its_own_operands():
    """S: score (m, n) = Σ_k a[k]·b[k]; O: out[j] (m, d_j) += Σ_k a[k]·b[j + 4k] (ImplSimt.mma's indexing)."""
    at = ATOM_SIMT
    for lane in LANES:
        (m, n), = [at.c_s.coords(lane, 0)]
        assert [at.a.coords(lane, k) for k in range(K_STEP)] == [(m, k) for k in range(K_STEP)]
        assert [at.b_col.coords(lane, k) for k in range(K_STEP)] == [(n, k) for k in range(K_STEP)]
        for j in range(at.c_o.size):
            m_o, d = at.c_o.coords(lane, j)
            assert m_o == m
            for k in range(K_STEP):
                assert at.b_row.coords(lane, j + 4 * k) == (k, d)


def _flat(t):
    return [x for e in t for x in _flat(e)] if isinstance(t, tuple) else [t]


def _evaluate(shape, stride):
    """{(thread, value): index} of a (thread, values) map given as plain (shape, stride) tuples."""
    out = {}
    ts, tt = _flat(shape[0]), _flat(stride[0])
    vs, vt = _flat(shape[1]), _flat(stride[1])
    threads, values = 1, 1
    for e in ts:
        threads *= e
    for e in vs:
        values *= e

    def offset(i, shapes, strides):
        off = 0
        for e, s in zip(shapes, strides):
            off += (i % e) * s
            i //= e
        return off

    for t in range(threads):
        for v in range(values):
            out[t, v] = offset(t, ts, tt) + offset(v, vs, vt)
    return out, threads


@pytest.mark.parametrize("tiles", [(8, 64, 1, 4), (16, 64, 2, 2), (64, 64, 4, 1)], ids=["w1x4", "w2x2", "w4x1"])
def test_simt_cta_maps_with_kv_slices(tiles):
    """CTA-wide maps of the SIMT Impl when warps split the KV tile (decode): every score and P element of the
    tile is owned exactly once, each warp group reads K/V only from its own slice of rows, and every group holds
    all of O exactly once (merged at the end)."""
    import cutlass

    from cute_attention.arch.sm70 import Simt

    tile_m, tile_n, warps_q, warps_s = tiles
    d = 64
    impl = Simt(tile_m, tile_n, warps_q, warps_s).build(cutlass.Float16, d)
    modes = impl.layout_modes(1)
    group = warps_q * 32
    sn = tile_n // warps_s
    for name, size in (("S", tile_m * tile_n), ("O", tile_m * d)):
        idx, threads = _evaluate(*modes[name])
        per_group = Counter()
        for (t, _), i in idx.items():
            per_group[t // group, i] += 1
        if name == "S":  # the tile once over the whole CTA
            assert sorted(Counter(idx.values()).values()) == [1] * size
        else:  # O: once per group
            assert all(c == 1 for c in per_group.values()) and len(per_group) == warps_s * size
    for name in ("K", "V"):
        idx, _ = _evaluate(*modes[name])
        for (t, _), i in idx.items():
            row = i % tile_n  # column-major (tile_n, d) tile: the row is the KV position
            assert row // sn == t // group, (name, t, row)
        assert {i % tile_n for i in idx.values()} == set(range(tile_n))
    idx, _ = _evaluate(*modes["S_local"])
    assert {i % tile_m for i in idx.values()} == set(range(tile_m))
    assert {i // tile_m for i in idx.values()} == set(range(sn))
