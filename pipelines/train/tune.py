"""`--tune channels` / `new-channels`: fine-tune only what is per channel, the pretrained
backbone frozen.

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

PER_CHANNEL = ("encoder.tokenizers.", "decoder_pred.", "new_pred.")  # new_pred: added bands


def trainable_prefixes(tune: str, groups: list[int] | None = None) -> tuple[str, ...]:
    """What trains: per-channel weights (`channels`), or the new channels' groups and
    output layers (`new-channels`, `train.extend`: a forecaster's head, an MAE's decoder
    rows)."""
    if tune == "channels":
        return PER_CHANNEL
    return (*(f"encoder.{part}.{g}." for g in groups or []
              for part in ("tokenizers", "aggregator.groups")), "new_head.", "new_pred.")


def freeze_for_tuning(model: nn.Module, tune: str, groups: list[int] | None = None
                      ) -> tuple[int, int]:
    """Freeze what `tune` leaves alone (`groups`: the new channels' groups, for
    `new-channels`); returns (trainable, total) parameter counts of this rank's shards."""
    trainable = total = 0
    keep_prefixes = trainable_prefixes(tune, groups)
    for name, p in model.named_parameters():
        keep = tune == "all" or clean_name(name).startswith(keep_prefixes)
        if not keep:
            p.requires_grad_(False)
        n = p.numel()
        total += n
        trainable += n if keep else 0
    return trainable, total
