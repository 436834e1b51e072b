"""Process groups, the (dp, tp) device mesh, and starting N local workers.

`launch` uses torch's elastic launcher (the machinery behind `torchrun`) for N > 1 local
workers; under `torchrun` (or `srun`, whose SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID are
taken as RANK/WORLD_SIZE/LOCAL_RANK) the worker runs in the calling process, and
WORLD_SIZE — not `--gpus` — is the truth about the job. A failing worker makes the
launcher stop the others and report the failing rank's error, rather than leaving
survivors blocked in a collective; collectives also time out after `timeout_min`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from pipelines.errors import DchagError, Interrupted
from pipelines.train.preempt import SIGNALS as STOP_SIGNALS
from pipelines.train.preempt import exit_rank_quietly, leave_on_stop_signals
from pipelines.train.rank_server import RankStart, enter_rank, rank_server, server_died

_RANK_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class RankContext:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    mesh: DeviceMesh  # 2-D: ("dp", "tp")

    @property
    def dp_mesh(self) -> DeviceMesh:
        return self.mesh["dp"]

    @property
    def tp_mesh(self) -> DeviceMesh:
        return self.mesh["tp"]

    @property
    def dp_rank(self) -> int:
        return self.dp_mesh.get_local_rank()

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def adopt_slurm_env() -> None:
    """Inside a multi-task `srun` step without torchrun, take SLURM's task numbering as
    torch's rank variables (MASTER_ADDR and MASTER_PORT must be exported by the job)."""
    env = os.environ
    if "RANK" in env or "SLURM_STEP_ID" not in env or int(env.get("SLURM_NTASKS", "1")) < 2:
        return
    if "MASTER_ADDR" not in env or "MASTER_PORT" not in env:
        raise DchagError("running under srun with several tasks but MASTER_ADDR/MASTER_PORT "
                         "are not set", fix="export MASTER_ADDR=$(scontrol show hostnames "
                         "$SLURM_JOB_NODELIST | head -n1) MASTER_PORT=29500 in the job script")
    env["RANK"], env["WORLD_SIZE"] = env["SLURM_PROCID"], env["SLURM_NTASKS"]
    env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
    per_node = env.get("SLURM_NTASKS_PER_NODE", "").split("(")[0]
    if per_node.isdigit():
        env["LOCAL_WORLD_SIZE"] = per_node


def under_launcher() -> bool:
    """True inside torchrun/srun/elastic workers (the rank variables are set)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def launcher_world() -> int | None:
    """WORLD_SIZE under an external launcher (checked against RANK), else None. A rank
    outside the world would wait for peers that never come: refused before anything."""
    if not under_launcher():
        return None
    values = {}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        text = os.environ.get(name)
        if text is None:
            continue
        try:
            values[name] = int(text)
        except ValueError:
            raise DchagError(f"{name}={text!r} is not a whole number",
                             fix="launch with torchrun or srun, which set it, or unset it "
                             "to let --gpus start the ranks") from None
    world, rank = values["WORLD_SIZE"], values["RANK"]
    if world < 1 or not 0 <= rank < world:
        raise DchagError(f"RANK={rank} is not a rank of WORLD_SIZE={world} (0 … {world - 1})",
                         fix="launch with torchrun or srun, which set both, or unset them "
                         "to let --gpus start the ranks")
    return world


def is_global_rank_zero() -> bool:
    """Outside a launcher the CLI process acts for rank 0 (it prepares the run folder)."""
    return not under_launcher() or os.environ.get("RANK") == "0"


def init_rank(tp: int, timeout_min: float) -> RankContext:
    """Join the process group (NCCL on GPUs, gloo on CPU) and build the (dp, tp) mesh."""
    world = int(os.environ["WORLD_SIZE"])
    if "LOCAL_RANK" not in os.environ:
        raise DchagError("RANK and WORLD_SIZE are set but LOCAL_RANK is not, so this "
                         "process cannot tell which GPU is its own",
                         fix="launch with torchrun (it sets LOCAL_RANK), or export it (srun: "
                         "LOCAL_RANK=$SLURM_LOCALID)")
    local_rank = int(os.environ["LOCAL_RANK"])
    if world % tp:
        raise DchagError(f"{world} ranks cannot be split into tensor-parallel groups of {tp}",
                         fix="choose --tp dividing the number of ranks")
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend, mesh_device = "nccl", "cuda"
    else:
        device, backend, mesh_device = torch.device("cpu"), "gloo", "cpu"
        torch.set_num_threads(cpu_threads())
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=dt.timedelta(minutes=timeout_min))
    mesh = init_device_mesh(mesh_device, (world // tp, tp), mesh_dim_names=("dp", "tp"))
    return RankContext(dist.get_rank(), world, local_rank, device, mesh)


def cpu_threads() -> int:
    """Threads a CPU rank computes with: OMP_NUM_THREADS where the user or the batch
    system set it (SLURM's --cpus-per-task share, a node shared with other jobs, torchrun's
    one per rank), else the machine's cores split among the ranks on it — never more
    threads than cores, which on a busy machine only spin."""
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    return max(1, (os.cpu_count() or 1) // max(1, _local_world()))


def _local_world() -> int:
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", 1)))


def shutdown() -> None:
    """Leave the process group; the barrier keeps a fast rank from tearing down gloo
    while a slow one is still in its last collective."""
    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a local job's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_devices(gpus: int) -> None:
    """On a GPU machine, one worker per GPU of *this node*; on CPU any number of gloo
    workers (testing). A multi-node job (torchrun --nnodes, srun) checks only its own node."""
    if not torch.cuda.is_available():
        return
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "0")) if under_launcher() else gpus
    if local > torch.cuda.device_count():
        raise DchagError(f"{local} ranks on this node but it has {torch.cuda.device_count()} "
                         "GPU(s)", fix="lower --gpus (or --nproc-per-node), or use more nodes "
                         "with torchrun --nnodes / srun")


def launch(worker: Callable[[Any], Any], arg: Any, nprocs: int) -> Any:
    """Run `worker(arg)` on `nprocs` ranks; returns rank 0's result.

    Under a launcher the current process is one rank. With one process and no launcher
    it runs here, in a world of one. Otherwise torch's elastic agent starts `nprocs`
    local workers (no restarts: a failure is reported, not retried). SIGUSR1 (SLURM's
    early warning) would end this process by default: it is left to the ranks, which
    checkpoint on it (`preempt.py`).
    """
    # torch's agent installs handlers of its own and leaves the defaults behind: the
    # command's own handling (one line for a stop signal) comes back after the launch.
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        return _launch(worker, arg, nprocs)
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


def _launch(worker: Callable[[Any], Any], arg: Any, nprocs: int) -> Any:
    if under_launcher():
        return worker(arg)
    if nprocs == 1:
        saved = {k: os.environ.get(k) for k in _RANK_VARS}
        os.environ.update({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0",
                           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())})
        try:
            return worker(arg)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # torch's elastic modules set a level on each of their loggers: quiet every one (our
    # own one-line messages say what happened).
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("torch.distributed.elastic", "torch.distributed.launcher",
                            "torch.multiprocessing")):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    # A rank killed outright (kill -9, the OOM killer) leaves a semaphore behind, which the
    # resource tracker process would report at exit: the one-line error already says it.
    quiet = "ignore::UserWarning:multiprocessing.resource_tracker"
    if quiet not in sys.warnoptions:
        sys.warnoptions.append(quiet)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nprocs,
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0",
                          run_id=f"dchag-{uuid.uuid4().hex[:8]}", max_restarts=0,
                          monitor_interval=0.2, start_method="forkserver")
    preload = ["torch", "torch.distributed", __name__, worker.__module__]
    try:
        with rank_server(preload) as start:
            results = elastic_launch(config, _interruptible)(worker, arg, start)
    except ChildFailedError as exc:
        stopped = {_signal_of(f.exitcode) for f in exc.failures.values()}
        if 0 not in stopped:  # the workers were stopped by a signal, not broken
            raise Interrupted(min(stopped)) from None
        if server_died():  # the ranks' exit status went with it: say what happened
            raise DchagError("the rank server that started the ranks died (killed from "
                             "outside?), and the ranks were stopped with it",
                             fix="--resume the run: its last finished checkpoint is "
                             "intact") from None
        raise DchagError(_failure_summary(exc)) from None
    except SignalException as exc:  # the agent's own handler for SIGINT/SIGTERM
        raise Interrupted(int(exc.sigval)) from None
    return results[0]


def _interruptible(worker: Callable[[Any], Any], arg: Any, start: RankStart) -> Any:
    """A rank's entry: the launcher's environment and Python's usual signal handling from
    here on (then the training loop's own handlers). A Ctrl-C before the training loop
    takes over (joining the process group, building the model) ends the rank quietly with
    130: every rank got it, and the launcher says so in one line."""
    enter_rank(start)
    try:
        result = worker(arg)
    except KeyboardInterrupt:
        exit_rank_quietly(130)
    leave_on_stop_signals()
    return result


def _signal_of(exitcode: int) -> int:
    """The stopping signal a worker's exit code reports (128 + n, or −n), else 0."""
    for sig in STOP_SIGNALS:
        if exitcode in (128 + sig, -sig):
            return int(sig)
    return 0


def _root_cause(failures: dict[int, Any]) -> tuple[int, Any]:
    """The failure that explains the others. A rank killed from outside (SIGKILL: the OOM
    killer, kill -9) comes first; a survivor that then aborts on the dead rank's broken
    connection (SIGABRT) comes last, whatever its rank; otherwise the lowest rank."""
    def order(item: tuple[int, Any]) -> tuple[int, int]:
        rank, failure = item
        cause = {-signal.SIGKILL: 0, -signal.SIGABRT: 2}.get(failure.exitcode, 1)
        return cause, rank

    return min(failures.items(), key=order)


def _failure_summary(exc: Any) -> str:
    """One line naming the failing rank that explains the others, and its error."""
    rank, failure = _root_cause(exc.failures)
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "")
    message = str(message).strip().splitlines()[-1] if message else ""
    if message.startswith("DchagError: "):
        message = message.removeprefix("DchagError: ")
    name = ""
    if not message or message.startswith("To enable traceback"):
        name = getattr(failure, "signal_name", lambda: "")()
        message = f"exited with code {failure.exitcode}" + (f" ({name})" if name else "")
    if failure.exitcode == -signal.SIGKILL or name == "SIGKILL" or "SIGKILL" in message:
        message += (" — killed from outside, most likely by the kernel's out-of-memory "
                    "killer (`dmesg` names it): fewer --gpus on this host, a smaller "
                    "--batch-size, --ac, or --crop")
    return f"worker rank {rank} failed: {message}"
