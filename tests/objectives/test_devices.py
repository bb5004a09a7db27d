"""trial_device: the device a trial trains on (its GPU share when CUDA is there, else the CPU)."""

from __future__ import annotations

import pytest
import torch

from sweeplab.objectives.devices import trial_device, visible_index


def test_a_trial_without_a_gpu_share_trains_on_the_cpu():
    assert trial_device(0) == "cpu"
    assert trial_device(0.0, gpu_ids=["0"], visible="0") == "cpu"


def test_a_gpu_share_is_cuda_only_where_torch_sees_cuda():
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert trial_device(0.5, gpu_ids=["0"], visible="0") == expected
    assert trial_device(1) == expected  # outside Ray: the first visible device


@pytest.mark.parametrize(("gpu_id", "visible", "index"), [
    ("0", "0", 0),  # what Ray sets for a trial given GPU 0
    ("3", "3", 0),  # ... given GPU 3: the process sees only it, as cuda:0
    ("3", "2,3", 1),  # a process that sees two devices
    ("3", " 2 , 3 ", 1),
    ("1", None, 1),  # nothing hides devices: CUDA's own numbering
    ("1", "", 1),
    ("GPU-8f2e", "GPU-1a2b,GPU-8f2e", 1),  # devices named by UUID
    ("GPU-8f2e", "0", 0),  # named otherwise than CUDA lists them: the first visible device
])
def test_the_cuda_index_is_the_assigned_gpus_place_among_the_visible_devices(gpu_id, visible, index):
    assert visible_index(gpu_id, visible) == index
