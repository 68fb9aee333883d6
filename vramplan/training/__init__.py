"""`vramplan train` without torch: data checks, sequence choice, plan verification logic, training arguments."""
