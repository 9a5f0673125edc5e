"""CPU: Volta's m8n8k4 MMA through inline PTX compiles for sm_80 and sm_90a; record what ptxas makes of it.

There is no HMMA form of m8n8k4 on Ampere/Hopper: ptxas emulates it (SHFL to exchange the quad-pairs'
operands, HADD2 to widen, FFMA to multiply-add). The test pins that lowering so a change shows up.
"""

import re
from collections import Counter

import cutlass
import cutlass.cute as cute
import pytest
from cutlass import Float32, Int32
from cutlass.cute.runtime import make_fake_tensor

from cute_attention.arch.sm70.mma884 import mma_m8n8k4
from cute_attention.tools.sass import disassemble, find_nvdisasm


@cute.kernel
def one_mma(mA: cute.Tensor, mD: cute.Tensor):
    tidx, _, _ = cute.arch.thread_idx()
    a = mA[tidx]
    d = mma_m8n8k4((a, a + 1), (a + 2, a + 3), [Float32(0.0)] * 8)
    for i in cutlass.range_constexpr(8):
        mD[tidx * 8 + i] = d[i]


@cute.jit
def launch_one_mma(mA: cute.Tensor, mD: cute.Tensor):
    one_mma(mA, mD).launch(grid=[1, 1, 1], block=[32, 1, 1])


@pytest.mark.skipif(find_nvdisasm() is None, reason="needs nvdisasm (pip install nvidia-cuda-nvdisasm)")
@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_m8n8k4_lowers_to_cuda_core_emulation(target, tmp_path):
    mA = make_fake_tensor(Int32, (32,), stride=(1,), assumed_align=16)
    mD = make_fake_tensor(Float32, (256,), stride=(1,), assumed_align=16)
    fn = cute.compile(launch_one_mma, mA, mD, options=f"--gpu-arch {target} --keep-cubin --dump-dir {tmp_path}")
    sass = disassemble(bytes(fn.__cubin__))
    ops = Counter(m.group(1).split(".")[0]
                  for m in re.finditer(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", sass))
    assert ops["HMMA"] == 0, ops
    # one warp-wide m8n8k4 = 4 quad-pair products of 8x8x4: 8 outputs per lane, 4 FMAs each
    assert ops["FFMA"] == 32, ops
    assert ops["SHFL"] > 0 and ops["HADD2"] > 0, ops
