"""Initial weights that do not depend on how the model is laid out.

Big models are built on the meta device, sharded (channel groups, tensor and data
parallelism), and only then given memory; each rank then fills just its own shards. For
the result to equal the single-process model exactly, every parameter draws from its own
generator, seeded by (seed, parameter name): the values of a parameter do not depend on
which others exist on a rank or in which order they are filled. A rank generates one
full parameter at a time on its device and keeps its shard, so its peak is the largest
single parameter, never the model.

The rules are the layers' usual defaults: `nn.Linear` uniform in ±1/√fan_in (PyTorch's
kaiming-uniform with a = √5), LayerNorm ones and zeros, per-channel patch embeddings
uniform in ±1/√(p²), learned queries, channel embeddings and the mask token N(0, 0.02²),
a D-CHAG-L level the mean of its members, a forecaster's added outputs zero.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

WRAPPER_PREFIXES = ("_checkpoint_wrapped_module.", "_fsdp_wrapped_module.", "_orig_mod.")


def clean_name(name: str) -> str:
    """A parameter's name as the single-process model spells it (no wrapper prefixes)."""
    for prefix in WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def _seed(seed: int, name: str) -> int:
    digest = hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


Rule = Callable[[tuple[int, ...], torch.Generator, torch.device], Tensor]


def _uniform(bound: float) -> Rule:
    def make(shape, gen, device):
        return torch.empty(shape, device=device).uniform_(-bound, bound, generator=gen)
    return make


def _normal(std: float) -> Rule:
    def make(shape, gen, device):
        return torch.empty(shape, device=device).normal_(0.0, std, generator=gen)
    return make


def _constant(value: float) -> Rule:
    def make(shape, gen, device):
        return torch.full(shape, value, device=device)
    return make


def _rules(module: nn.Module) -> dict[str, Rule]:
    """How to fill each of `module`'s own parameters (not its children's)."""
    from pipelines.model.aggregate import LinearLevel
    from pipelines.model.layers import QueryAttention
    from pipelines.model.mae import MAE
    from pipelines.model.new_outputs import ZeroStartLinear
    from pipelines.model.tokenizer import ChannelTokenizer

    if isinstance(module, ZeroStartLinear):
        return {"weight": _constant(0.0), "bias": _constant(0.0)}
    if isinstance(module, nn.Linear):
        bound = 1 / math.sqrt(module.in_features)
        return {"weight": _uniform(bound), "bias": _uniform(bound)}
    if isinstance(module, nn.LayerNorm):
        return {"weight": _constant(1.0), "bias": _constant(0.0)}
    if isinstance(module, ChannelTokenizer):
        bound = 1 / math.sqrt(module.patch**2)
        return {"weight": _uniform(bound), "bias": _uniform(bound),
                "channel_embed": _normal(0.02)}
    if isinstance(module, QueryAttention):
        return {"query": _normal(0.02)}
    if isinstance(module, MAE):
        return {"mask_token": _normal(0.02)}
    if isinstance(module, LinearLevel):
        counts = torch.bincount(torch.tensor(module.assignment), minlength=module.n_out)
        mean = (1.0 / counts[torch.tensor(module.assignment)]).float()
        return {"weight": lambda shape, gen, device: mean.to(device),
                "bias": _constant(0.0)}
    return {}


def _own_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Module, str, nn.Parameter]]:
    for mod_name, module in model.named_modules():
        for p_name, param in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            yield clean_name(full), module, p_name, param


@torch.no_grad()
def init_weights(model: nn.Module, seed: int) -> None:
    """Fill every parameter (or this rank's shard of it) deterministically from `seed`."""
    for name, module, p_name, param in _own_parameters(model):
        rule = _rules(module).get(p_name)
        if rule is None:
            raise TypeError(f"no initialisation rule for parameter {name} "
                            f"({type(module).__name__}.{p_name})")
        device = param.device
        gen = torch.Generator(device=device).manual_seed(_seed(seed, name))
        full = rule(tuple(param.shape), gen, device).to(param.dtype)
        target = param
        if hasattr(param, "device_mesh"):  # a DTensor: keep this rank's shard only
            from torch.distributed.tensor import distribute_tensor

            full = distribute_tensor(full, param.device_mesh, param.placements,
                                     src_data_rank=None).to_local()
            target = param.to_local()
        target.copy_(full)


def init_buffers(model: nn.Module) -> None:
    """Recompute the non-persistent buffers (position embeddings, index maps) that a model
    given memory with `to_empty` holds only as uninitialised storage."""
    for module in model.modules():
        reset = getattr(module, "reset_buffers", None)
        if reset is not None:
            reset()
