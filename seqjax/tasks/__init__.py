"""Tasks: how batches are made, their losses and their trivial baselines."""
