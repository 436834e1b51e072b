"""`dchag plan`: the layout a machine should run — searched, not guessed.

Every layout of the GPUs (tp × dp, D-CHAG variant and tree or the pure-TP baseline,
channel stage, activation checkpointing, micro-batch) gets a step time from a stated
roofline — per-rank FLOPs per component at `efficiency` of the GPU's bf16 peak (plus the
forward recomputed under activation checkpointing), and the step's collective bytes over
the link (`comm.py`; no overlap assumed) — and a lower bound of its memory (fp32
parameters, gradients and AdamW state: 16 bytes per parameter, shared by tp·dp ranks).

Candidates are then taken fastest first, and each is checked by the memory planner (fake
tensors, `planner.py`): the same number `dchag bench memory --estimate` prints. Memory
is linear in the micro-batch, so a layout's two smallest micro-batches are planned first
and predict the rest: one predicted to exceed the memory is never planned. The walk stops
when `top` D-CHAG layouts and one baseline layout fit, or before more than `budget_plans`
layouts would be planned (one kept for the folded baseline on the best layout): a count,
not seconds, so the answer is the same on a busy machine and an idle one, with or without
the cache. Planner results are cached on disk, keyed by the case and by the code that
decides its memory (the model, its parallel layout, the step the planner runs, and
torch's version), so a
second search is quick and an upgrade never answers from an older planner.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipelines.bench.case import Case
from pipelines.bench.comm import Link, step_comm
from pipelines.bench.devices import Device
from pipelines.fsops import write_json
from pipelines.model.config import PRESETS

EFFICIENCY = 0.4  # of the bf16 peak, for the step's FLOPs (stated in every output)
LATENCY_US = 5.0  # per ring step of a collective
STATIC_BYTES = 16  # per parameter: fp32 weight, gradient, AdamW's two moments
MICRO_BATCHES = (1, 2, 4, 8)


@dataclass
class Candidate:
    case: Case
    step_s: float  # roofline
    compute_s: float
    comm_s: float
    static_bytes: float  # lower bound of the memory per rank
    peak_mem_bytes: float = math.nan  # the planner's, once checked
    fits: bool | None = None
    why: str = ""  # how it was ruled out, if it was

    @property
    def samples_per_s(self) -> float:
        return self.case.batch * self.case.dp / self.step_s


@dataclass
class SearchResult:
    candidates: list[Candidate]  # checked and fitting, fastest first
    considered: int
    planned: int
    ruled_out: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    complete: bool = True  # False: the plan budget ended the walk
    baseline_planned: int = 0  # baseline layouts the walk judged (planned or extrapolated)
    # the strongest baseline (`folded`: no channel tokens) on the best D-CHAG layout, so
    # D-CHAG's memory is compared with it like for like (None: no D-CHAG layout fits)
    folded_same_layout: Candidate | None = None


def enumerate_cases(gpus: int, preset: str, channels: int, img: tuple[int, int],
                    patch: int, task: str, micro_batches=MICRO_BATCHES) -> list[Case]:
    heads = PRESETS[preset]["heads"]
    out = []
    for tp in (t for t in range(1, gpus + 1) if gpus % t == 0 and heads % t == 0):
        dp = gpus // tp
        layouts = [("baseline", 0, impl) for impl in ("folded", "fused")]
        layouts += [(v, tree, impl) for v in ("L", "C") for tree in (0, 1, 2)
                    for impl in ("fused", "folded")]
        for (variant, tree, impl) in layouts:
            for ac in (True, False):
                for mb in micro_batches:
                    out.append(Case(preset, channels, variant, tree, tp, img, patch, mb, dp,
                                    impl, "head-split", ac, ac, task))
    return out


def _flops_per_sample(case: Case) -> float:
    """Busiest rank's FLOPs of one sample's step (linear in the batch); recomputation of
    the forward under activation checkpointing added (a third of forward + backward)."""
    return _counted(_model_key(case)) * (4 / 3 if case.ac else 1.0)


def _model_key(case: Case) -> Case:
    """The case with what does not change the model or its per-rank FLOPs set aside."""
    return replace(case, batch=1, dp=1, ac=True, ac_channels=True)


@functools.lru_cache(maxsize=512)
def _counted(case: Case) -> float:
    from pipelines.train.flops import rank_flops  # torch: not at `dchag --help`

    return rank_flops(case.model_config(), case.task, 1, 0.75, case.tp,
                      case.aggregation == "head-split")["total"]


@functools.lru_cache(maxsize=128)
def _parameters(case: Case) -> int:
    from pipelines.bench.dchag_bench import whole_model_parameters

    return whole_model_parameters(case)


def roofline(case: Case, dev: Device, efficiency: float = EFFICIENCY) -> Candidate:
    params = _parameters(_model_key(case))
    per_rank = params / case.world
    compute = _flops_per_sample(case) * case.batch / (dev.peak_tflops * 1e12 * efficiency)
    comm = step_comm(case, 2, per_rank, Link(dev.name, dev.link_gbs, LATENCY_US))
    return Candidate(case, compute + comm["comm_s_modelled"], compute,
                     comm["comm_s_modelled"], STATIC_BYTES * per_rank)


@functools.cache
def planner_code_key() -> str:
    """A digest of the sources a planned peak depends on, and of torch's version."""
    import torch

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(torch.__version__.encode())
    for folder in ("model", "parallel", "bench", "train"):
        for source in sorted((root / folder).glob("*.py")):
            digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()[:16]


class PlanCache:
    """Planner records on disk, one JSON file per case and planner code."""

    def __init__(self, folder: Path | None):
        self.folder = folder

    def _path(self, case: Case) -> Path | None:
        if self.folder is None:
            return None
        key = json.dumps({**case.record(), "code": planner_code_key()}, sort_keys=True)
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"

    def get(self, case: Case) -> dict | None:
        path = self._path(case)
        if path is None or not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # a damaged entry is planned again

    def put(self, case: Case, record: dict) -> None:
        path = self._path(case)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {k: v for k, v in record.items()
                          if isinstance(v, int | float | str | bool | None)}, indent=None)


def search(gpus: int, dev: Device, preset: str, channels: int, img: tuple[int, int],
           patch: int, task: str, planner: Callable[[Case], dict], top: int = 3,
           budget_plans: int = 12, efficiency: float = EFFICIENCY,
           cache: PlanCache | None = None, on_planned: Callable[[Candidate, bool], None]
           | None = None, micro_batches=MICRO_BATCHES) -> SearchResult:
    started = time.perf_counter()
    cache = cache or PlanCache(None)
    limit = dev.usable_bytes
    cases = enumerate_cases(gpus, preset, channels, img, patch, task, micro_batches)
    cands = [roofline(c, dev, efficiency) for c in cases]
    ruled: dict[str, int] = {}

    def rule(c: Candidate, why: str) -> None:
        c.why = why
        ruled[why] = ruled.get(why, 0) + 1

    live = []
    for c in cands:
        if c.static_bytes > limit:
            rule(c, "parameters, gradients and optimizer state alone exceed the memory")
        else:
            live.append(c)
    live.sort(key=lambda c: -c.samples_per_s)
    peaks: dict[Case, float] = {}  # planned this search (or cached)
    fitting: list[Candidate] = []
    planned = 0
    baseline_planned = 0
    complete = True

    def peak_of(case: Case) -> float:
        nonlocal planned
        if case not in peaks:
            record = cache.get(case)
            hit = record is not None
            if record is None:
                record = planner(case)
                cache.put(case, record)
            planned += 1
            peaks[case] = float(record["peak_mem_bytes"])
            if on_planned:
                probe = Candidate(case, math.nan, math.nan, math.nan, math.nan,
                                  peaks[case], peaks[case] <= limit)
                on_planned(probe, hit)
        return peaks[case]

    for c in live:
        dchag = [f for f in fitting if f.case.variant != "baseline"]
        base = [f for f in fitting if f.case.variant == "baseline"]
        if len(dchag) >= top and base:
            break
        if (c.case.variant == "baseline" and base) or \
                (c.case.variant != "baseline" and len(dchag) >= top):
            continue  # a slower layout of a kind already found adds nothing
        # Memory is linear in the micro-batch: two small probes of the layout predict
        # the rest, so a micro-batch far too large is never planned.
        probes = [replace(c.case, batch=b) for b in sorted(micro_batches)[:2]]
        needed = len({p for p in (*probes, c.case) if p not in peaks})
        if planned + needed > budget_plans - 1:  # one kept for the folded baseline
            complete = False
            break
        if c.case.variant == "baseline":
            baseline_planned += 1
        if c.case.batch > probes[-1].batch:
            (b0, m0), (b1, m1) = ((p.batch, peak_of(p)) for p in probes)
            predicted = m0 + (m1 - m0) / (b1 - b0) * (c.case.batch - b0)
            if not math.isfinite(predicted) or predicted > 1.05 * limit:
                rule(c, "memory extrapolated over the micro-batch exceeds the limit")
                continue
        c.peak_mem_bytes = peak_of(c.case)
        c.fits = bool(math.isfinite(c.peak_mem_bytes) and c.peak_mem_bytes <= limit)
        if c.fits:
            fitting.append(c)
        else:
            rule(c, "the memory planner's peak exceeds the limit")
    fitting.sort(key=lambda c: -c.samples_per_s)
    best = next((c for c in fitting if c.case.variant != "baseline"), None)
    same = None
    if best is not None:
        same = roofline(replace(best.case, variant="baseline", tree=0,
                                channel_impl="folded"), dev, efficiency)
        same.peak_mem_bytes = peak_of(same.case)
        same.fits = bool(math.isfinite(same.peak_mem_bytes) and same.peak_mem_bytes <= limit)
    return SearchResult(fitting, len(cands), planned, ruled,
                        time.perf_counter() - started, complete, baseline_planned, same)
