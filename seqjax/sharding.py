"""Device mesh, batch sharding and multi-host start-up — JAX's own SPMD engine, nothing home-made.

``config.mesh.data`` × ``config.mesh.model`` devices (−1: all devices not used by the other
axis). Batches are split along the ``data`` axis; parameters and optimizer state are
replicated (the ``model`` axis is there for the shape of the mesh; parameters are not
sharded along it yet). jit partitions the training step from these shardings: each device
computes its slice of the batch, and the mean over the batch becomes an all-reduce.

Several hosts: with ``config.distributed = True`` the entry point calls
``jax.distributed.initialize()`` (which reads SLURM / TPU-pod / cloud environments itself)
before anything touches a device. Each host then feeds only its own slice of the global
batch (``host_slice``) and ``global_batch`` assembles the global array.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA = "data"
MODEL = "model"


def maybe_initialize_distributed(config) -> None:
    """``jax.distributed.initialize()`` once, when ``config.distributed`` is set."""
    if config.get("distributed", False) and not getattr(maybe_initialize_distributed, "_done", False):
        # CPU hosts need a collectives library for cross-process all-reduce (GPU/TPU
        # clients ignore this setting); it must be chosen before initialize().
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize()
        maybe_initialize_distributed._done = True


def make_mesh(mesh_config=None, devices=None) -> Mesh:
    """A (data, model) mesh over ``devices`` (default: all) from ``config.mesh``."""
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    data = -1 if mesh_config is None else int(mesh_config.data)
    model = 1 if mesh_config is None else int(mesh_config.model)
    if model <= 0 or model > n or n % model:
        raise ValueError(f"mesh.model={model} must be a positive divisor of the device count {n}")
    if data == -1:
        data = n // model
    if data <= 0 or data * model > n:
        raise ValueError(f"mesh.data={data} × mesh.model={model} needs {data * model} devices; "
                         f"{n} available (use mesh.data=-1 for all of them)")
    grid = np.asarray(devices[:data * model]).reshape(data, model)
    return Mesh(grid, (DATA, MODEL))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
    """Split dimension ``batch_axis`` along the mesh's data axis."""
    return NamedSharding(mesh, P(*([None] * batch_axis), DATA))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    n = mesh.shape[DATA]
    if batch_size % n:
        raise ValueError(f"train.batch_size={batch_size} is not divisible by the {n} devices of "
                         f"the mesh's data axis; use a multiple of {n} or set mesh.data")
    if batch_size % jax.process_count():
        raise ValueError(f"train.batch_size={batch_size} is not divisible by the "
                         f"{jax.process_count()} hosts")


def host_slice(global_batch_size: int) -> tuple[int, int]:
    """(start, size) of this host's part of a global batch."""
    per_host = global_batch_size // jax.process_count()
    return jax.process_index() * per_host, per_host


def global_batch(batch, mesh: Mesh, batch_axis: int = 0, *, same_on_every_host: bool = False):
    """Place a batch on the mesh, split along ``batch_axis``.

    Single host: ``batch`` is the whole global batch. Several hosts: ``batch`` is this
    host's slice (training data), or — with ``same_on_every_host`` (a fixed eval set that
    every host builds alike) — the whole batch, of which each host contributes its slice.
    Arrays whose batch dimension does not divide over the data axis are replicated.
    """
    n_data = mesh.shape[DATA]
    hosts = jax.process_count()

    def put(x):
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        global_size = x.shape[batch_axis] * (1 if same_on_every_host else hosts) \
            if x.ndim > batch_axis else 0
        if x.ndim <= batch_axis or global_size % n_data or global_size % hosts:
            return jax.device_put(x, replicated(mesh)) if hosts == 1 else \
                jax.make_array_from_process_local_data(replicated(mesh), np.asarray(x))
        sharding = batch_sharding(mesh, batch_axis)
        if hosts == 1:
            return jax.device_put(x, sharding)
        if same_on_every_host:
            start, size = host_slice(global_size)
            x = np.take(np.asarray(x), np.arange(start, start + size), axis=batch_axis)
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree.map(put, batch)


def agree(flag: bool) -> bool:
    """Every process's ``flag`` or'ed together (one process: the flag itself). Hosts decide
    together whether to run (the workdir lock) and when to stop (a SIGTERM on one host),
    so that none waits forever in a collective the others have left."""
    if jax.process_count() == 1:
        return bool(flag)
    flags = multihost_utils.process_allgather(np.array([flag], np.int32))
    return bool(np.any(flags))
