"""`--tune channels`: fine-tune only what is per channel, the pretrained backbone frozen.

Every channel has its own patch embedding (weights, bias and channel embedding, in the
tokenizer of its group) and its own rows of the MAE decoder's output layer; the
transformer, the channel aggregation and the decoder blocks are shared by all channels.
Adapting a model to another instrument's bands is a change of the per-channel part, so
training only that keeps what pretraining learnt of plants and needs a fraction of the
optimizer state.
"""

from __future__ import annotations

from torch import nn

from pipelines.model.init import clean_name

PER_CHANNEL = ("encoder.tokenizers.", "decoder_pred.")


def freeze_for_tuning(model: nn.Module, tune: str) -> tuple[int, int]:
    """Freeze what `tune` leaves alone; returns (trainable, total) parameter counts of
    this rank's shards."""
    trainable = total = 0
    for name, p in model.named_parameters():
        keep = tune == "all" or clean_name(name).startswith(PER_CHANNEL)
        if not keep:
            p.requires_grad_(False)
        n = p.numel()
        total += n
        trainable += n if keep else 0
    return trainable, total
