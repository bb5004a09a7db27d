"""Which device a trial trains on: its share of a GPU when it has one and CUDA is there, else the CPU.

Ray gives a trial with ``resources.gpu > 0`` one GPU (or a share of one) and sets
``CUDA_VISIBLE_DEVICES`` to the ids it assigned before the trial starts, so the
frameworks see only those devices. sweeplab runs each GPU trial in a fresh worker
process (see :class:`sweeplab.search.executor.RayExecutor`): CUDA is initialised
after Ray set the variable, never with another trial's devices.

:func:`trial_device` is the one answer to "where does this trial's model go", for the
objectives and for users' own training functions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["trial_device", "visible_index"]

CUDA_VISIBLE = "CUDA_VISIBLE_DEVICES"


def visible_index(gpu_id: str, visible: str | None) -> int:
    """The index CUDA gives the GPU ``gpu_id`` (as Ray names it) when ``CUDA_VISIBLE_DEVICES``
    is ``visible``: its position in that list, or the id itself when nothing hides devices.

    >>> visible_index("3", "2,3")
    1
    >>> visible_index("1", None)
    1
    """
    if visible is None or not visible.strip():
        return int(gpu_id) if str(gpu_id).isdigit() else 0
    entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
    if str(gpu_id) in entries:
        return entries.index(str(gpu_id))
    return 0  # Ray named the device by something CUDA lists otherwise (a UUID): its first visible device


def trial_device(gpus: float, gpu_ids: Sequence[object] | None = None, visible: str | None = None) -> str:
    """``"cuda:N"`` when the trial has a GPU share (``gpus > 0``) and torch sees CUDA, else ``"cpu"``.

    ``N`` is the index, among the devices visible to this process, of the first GPU Ray
    assigned to the trial (``gpu_ids``, default ``ray.get_gpu_ids()`` inside a Ray task;
    ``visible``, default ``$CUDA_VISIBLE_DEVICES``). Ray sets ``CUDA_VISIBLE_DEVICES`` to
    the assigned ids, so this is ``"cuda:0"`` for a trial with one GPU or a share of one.
    Outside Ray (an in-process study, a direct call) with a GPU share: the first visible
    device. torch is imported only when ``gpus > 0``; without torch, or with a CPU build
    of it, the answer is ``"cpu"``.
    """
    if not gpus or gpus <= 0:
        return "cpu"
    try:
        import torch
    except ImportError:
        return "cpu"
    if not torch.cuda.is_available():
        return "cpu"
    ids = list(gpu_ids) if gpu_ids is not None else _assigned_gpu_ids()
    if not ids:
        return "cuda:0"
    index = visible_index(str(ids[0]), visible if visible is not None else os.environ.get(CUDA_VISIBLE))
    return f"cuda:{index}"


def _assigned_gpu_ids() -> list[object]:
    """The GPU ids Ray assigned to the running task (empty outside a Ray task)."""
    try:
        import ray

        if ray.is_initialized():
            return list(ray.get_gpu_ids())
    except Exception:  # outside a Ray worker, or Ray not installed
        pass
    return []
