"""The D-CHAG model: per-channel tokenizer, hierarchical channel aggregation, ViT, heads.

Plain single-process PyTorch; `pipelines.parallel` distributes it without changing it.
"""
