"""Distributing the D-CHAG model: channel groups over tensor-parallel ranks, one all-gather
of partial latents, Megatron-style tensor-parallel ViT blocks."""
