"""`vramplan train`: data checks and sequence choice (data, lengths, seqlen), training arguments, verification
of the plan with real steps (verify), the one-GPU run (run) and the multi-GPU launch (distributed, multi_gpu;
worker: rank_train). Torch is imported only inside the functions that run on the GPU."""
