"""`vramplan calibrate`: the designed sweep (design), its measured runs in fresh processes (sweep; workers:
measure, rank_measure, build_model), the append-only records (records) and the parameters solved from them
(solve). Only the workers import torch."""
