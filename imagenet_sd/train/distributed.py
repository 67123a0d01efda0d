"""Several training processes on one node: rank helpers, and spawning one process per GPU from inside a job
(DistributedDataParallel, no torchrun). On CPU the same code runs over gloo, which is how the tests run it."""

from __future__ import annotations

import logging
import os
import socket
import sys

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def count_devices(devices: int | str, device: torch.device, *, processes_on_cpu: bool = False) -> int:
    """Training processes for the `devices` setting: 'auto' = every GPU this job sees (CUDA_VISIBLE_DEVICES).

    Several processes on CPU (gloo) only with `processes_on_cpu`: the tests' way to run the distributed code.
    """
    if device.type == "cuda":
        visible = torch.cuda.device_count()
        wanted = visible if devices == "auto" else devices
        if wanted > visible:
            raise ValueError(
                f"devices: {wanted}, but this job sees {visible} GPU(s): request as many "
                f"(SLURM: set-resources train gpu) or set devices: auto"
            )
        return wanted
    if devices in ("auto", 1) or processes_on_cpu:
        return 1 if devices == "auto" else devices
    raise ValueError(f"devices: {devices} needs as many GPUs and this job sees none; set devices: 1 or auto")


def rank_and_ranks() -> tuple[int, int]:
    """(this process's rank, number of processes): (0, 1) unless torch.distributed is set up."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """A scalar averaged over the processes (the value itself in a single process)."""
    if rank_and_ranks()[1] == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def gather_objects(obj) -> list:
    """`obj` of every rank, in rank order."""
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def free_port() -> int:
    """A TCP port nobody listens on now (the process group's rendezvous; all ranks are on this node)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_on_devices(fn, ranks: int, device_type: str, *, threads: int, log_path=None, **kwargs) -> None:
    """`fn(**kwargs, device=...)` in `ranks` processes of this node, one per GPU (nccl), or on CPU (gloo, tests).

    The processes are spawned, not forked: a spawned process re-imports the job's script as __mp_main__,
    so a script that calls this must guard its Snakemake block with `__name__ == "__main__"`.
    `fn` must be a module-level function (it is pickled into the spawned processes).
    """
    port = free_port()
    log.info("running %s in %d processes on %s, rendezvous at 127.0.0.1:%d", fn.__name__, ranks, device_type, port)
    torch.multiprocessing.spawn(
        run_rank, args=(ranks, port, device_type, threads, log_path, fn, kwargs), nprocs=ranks, join=True
    )


def run_rank(rank: int, ranks: int, port: int, device_type: str, threads: int, log_path, fn, kwargs: dict):
    """One spawned process: join the process group, then run `fn` on this rank's device."""
    if log_path:
        log_to_file_as_rank(log_path, rank)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, threads))
    if device_type == "cuda":
        torch.cuda.set_device(rank)
        device, backend = torch.device("cuda", rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    dist.init_process_group(backend, rank=rank, world_size=ranks, device_id=device if backend == "nccl" else None)
    try:
        fn(**kwargs, device=device)
    finally:
        dist.destroy_process_group()


def log_to_file_as_rank(log_path, rank: int) -> None:
    """Append this rank's log lines and tracebacks to the job's log: everything from rank 0, warnings from others."""
    sys.stderr = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        force=True,
        handlers=[logging.StreamHandler(sys.stderr)],
        format=f"%(asctime)s %(levelname)s rank {rank} %(name)s: %(message)s",
    )
    logging.captureWarnings(True)
