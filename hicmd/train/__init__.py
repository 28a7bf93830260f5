"""Training: the Hi-CMD trainer (D step + G step), the loop, checkpoints, logging."""
