"""Accelerators `dchag plan` can plan for: memory, dense bf16 peak and the link between
GPUs of a node — the inputs of its roofline, each stated, each overridable
(`--gpu-memory`, `--peak-tflops`, `--link-gbps`)."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.errors import DchagError

USABLE = 0.9  # of the memory: the rest for the CUDA/ROCm context, NCCL/RCCL and fragmentation


@dataclass(frozen=True)
class Device:
    name: str
    memory_gib: float
    peak_tflops: float  # dense bf16, vendor datasheet
    link_gbs: float  # GB/s per direction between two GPUs of a node (TP collectives)
    note: str

    @property
    def usable_bytes(self) -> float:
        return self.memory_gib * 2**30 * USABLE

    def describe(self) -> str:
        return (f"{self.name}: {self.memory_gib:g} GiB ({USABLE:.0%} usable), "
                f"{self.peak_tflops:g} TFLOP/s bf16 dense, link {self.link_gbs:g} GB/s")


DEVICES = {d.name: d for d in (
    Device("h100-80gb", 80, 989, 450, "H100 SXM; NVLink 4, 450 GB/s per direction"),
    Device("h200-141gb", 141, 989, 450, "H200 SXM; NVLink 4, 450 GB/s per direction"),
    Device("a100-40gb", 40, 312, 300, "A100 SXM; NVLink 3, 300 GB/s per direction"),
    Device("a100-80gb", 80, 312, 300, "A100 SXM; NVLink 3, 300 GB/s per direction"),
    Device("mi250x-64gb", 64, 191.5, 50,
           "one MI250X GCD (Frontier's GPU); Infinity Fabric between GCDs 50–200 GB/s, "
           "the slowest pair assumed"),
    Device("gh200-96gb", 96, 989, 450, "GH200's H100; NVLink 4, 450 GB/s per direction"),
)}


def device(name: str | None, memory_gib: float | None, peak_tflops: float | None,
           link_gbs: float | None) -> Device:
    """A table entry, with any of its numbers overridden; or a device given by numbers."""
    if name is None:
        if None in (memory_gib, peak_tflops, link_gbs):
            raise DchagError("--gpu NAME, or all of --gpu-memory, --peak-tflops and "
                             "--link-gbps", fix=f"choose a --gpu: {', '.join(DEVICES)}")
        return Device("custom", memory_gib, peak_tflops, link_gbs, "given by numbers")
    if name not in DEVICES:
        raise DchagError(f"unknown --gpu {name!r}", fix=f"choose one of {', '.join(DEVICES)}, "
                         "or give --gpu-memory, --peak-tflops and --link-gbps")
    base = DEVICES[name]
    return Device(base.name, memory_gib or base.memory_gib, peak_tflops or base.peak_tflops,
                  link_gbs or base.link_gbs, base.note)
