"""GPU: the sm90 variants whose producer warp group moves a paged cache's K/V by cp.async (by name), against the
gathered reference: every block size (smaller than, equal to and larger than the 128-row KV tile), lengths 1 and
block boundaries ± 1, NaN in every cache row no sequence holds, GQA, decode and prefill rows, split counts 1, 3 and
the heuristic, causal / full / window, both dtypes, d64 and d128 (skipped without an sm_90 GPU)."""

import pytest
import torch
from test_gpu_attention import rand, skip_unless_runnable
from test_gpu_kvcache import CACHE_MASKS, check_splits_and_masks, gather, make_paged, poison_unheld_rows

from cute_attention.kv import PAGED_BLOCK_SIZES

pytestmark = pytest.mark.gpu

# (variant, query rows per sequence, query / KV heads)
CASES = {
    "sm90_m64n128_pack_cpasync": ((1, 4), (8, 2)),
    "sm90_m128n128_cpasync": ((1, 150), (6, 2)),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_cp_async_producer_matches_reference(name, d, dtype):
    skip_unless_runnable("sm90")
    sqs, (nheads, nheads_kv) = CASES[name]
    for block_size in PAGED_BLOCK_SIZES:
        lengths = [1, block_size - 1, block_size + 1, 2 * block_size, 517]
        k_cache, v_cache, table = make_paged(lengths, block_size, nheads_kv, d, dtype)
        ks = [gather(k_cache, table[b], n) for b, n in enumerate(lengths)]
        vs = [gather(v_cache, table[b], n) for b, n in enumerate(lengths)]
        poison_unheld_rows(k_cache, v_cache, table, lengths)
        seqlens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
        for sq in sqs:
            q = rand(len(lengths), sq, nheads, d, dtype=dtype)
            check_splits_and_masks(q, (k_cache, v_cache, table, seqlens, ks, vs),
                                   f"{name} bs={block_size} sq={sq}", splits=(1, 3, 0), masks=CACHE_MASKS,
                                   variant=name)
