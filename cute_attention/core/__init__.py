"""Layer 0: device core math and the contracts between blocks (no generation, no torch): index math, masks,
online softmax, the three-phase walk, compile targets, the blocks' protocols."""
