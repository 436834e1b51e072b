"""What a run folder is — its config, periods and targets, checkpoints, the portable
model file, loading a run for inference — below both training and evaluation."""
