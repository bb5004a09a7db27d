"""Per-trial resources: refused before any trial when no node has them, GPU shares scheduled as Ray does.

There is no GPU on the test machine: the GPU scheduling runs on a Ray started with one
logical GPU (``ray.init(num_gpus=1)``), which Ray schedules and assigns exactly like a
real one (``ray.get_gpu_ids()``, ``CUDA_VISIBLE_DEVICES``). What CUDA then does with a
real device is not covered here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from sweeplab.core.errors import ResourceError, SpecError
from sweeplab.search.preflight import check_trial_resources
from sweeplab.spec import Resources, parse_spec

ROOT = Path(__file__).resolve().parents[2]

NODES = [
    {"Alive": True, "NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": 4.0, "node:__internal_head__": 1.0}},
    {"Alive": True, "NodeManagerAddress": "10.0.0.2", "Resources": {"CPU": 8.0, "GPU": 1.0}},
    {"Alive": False, "NodeManagerAddress": "10.0.0.3", "Resources": {"CPU": 64.0, "GPU": 8.0, "tpu": 4.0}},
]


def base_spec(**over):
    data = {
        "study": "res",
        "direction": "maximize",
        "metric": "score",
        "trials": 2,
        "workers": 2,
        "objective": {"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 1},
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}, "y": {"type": "float", "low": -1.0, "high": 1.0}},
    }
    data.update(over)
    return data


# ------------------------------------------------------------------ the check itself
def test_resources_no_alive_node_has_are_each_named_with_every_node_listed():
    with pytest.raises(ResourceError) as info:
        check_trial_resources(Resources(cpu=16, gpu=2, custom={"tpu": 1}), NODES, source="spec.yaml")
    error = info.value
    assert isinstance(error, SpecError) and isinstance(error, ValueError) and error.exit_code == 2
    assert [p.path for p in error.problems] == ["resources.cpu", "resources.gpu", "resources.custom.tpu"]
    text = str(error)
    assert "16 CPUs, but the largest node of the Ray cluster has 8" in text
    assert "2 GPU, but no node of the Ray cluster has more than 1 GPUs" in text
    assert "custom resource `tpu`, but no node of the Ray cluster offers it" in text
    assert "  10.0.0.1 (head): CPU 4, GPU 0, tpu 0\n  10.0.0.2: CPU 8, GPU 1, tpu 0" in text
    assert "10.0.0.3" not in text  # a dead node offers nothing


def test_a_gpu_on_a_cluster_without_one_says_how_to_train_on_cpus_or_where_to_find_a_gpu():
    with pytest.raises(ResourceError, match=r"resources.gpu: a trial asks for 1 GPU, but no node of the Ray cluster "
                                            r"has a GPU\. Set resources.gpu to 0 .*--address"):
        check_trial_resources(Resources(cpu=1, gpu=1), NODES[:1])


def test_resources_found_only_on_different_nodes_are_refused_as_a_whole():
    nodes = [{"Alive": True, "NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": 8.0}},
             {"Alive": True, "NodeManagerAddress": "10.0.0.2", "Resources": {"CPU": 2.0, "GPU": 1.0}}]
    with pytest.raises(ResourceError, match=r"resources: a trial needs CPU 6, GPU 1 on one node"):
        check_trial_resources(Resources(cpu=6, gpu=1), nodes)


@pytest.mark.parametrize("resources", [Resources(cpu=8, gpu=1), Resources(cpu=0.5, gpu=0.5), Resources(cpu=4)])
def test_resources_one_node_has_pass(resources):
    check_trial_resources(resources, NODES)


# ------------------------------------------------------------------ the spec's rules
@pytest.mark.parametrize(("resources", "path", "fragment"), [
    ({"gpu": 1.5}, "resources.gpu", "whole number of GPUs.*got 1.5"),
    ({"custom": {"GPU": 1}}, "resources.custom.GPU", "not one of Ray's own"),
    ({"custom": {"tpu": 0}}, "resources.custom.tpu", "> 0"),
    ({"custom": [1]}, "resources.custom", "must be a mapping"),
])
def test_resource_rules_are_spec_problems(resources, path, fragment):
    with pytest.raises(SpecError, match=rf"(?s){path}: .*{fragment}"):
        parse_spec(base_spec(resources=resources))


def test_custom_resources_round_trip_and_become_ray_task_options():
    spec = parse_spec(base_spec(resources={"cpu": 0.5, "gpu": 2, "custom": {"big_memory": 1}}))
    assert spec.resources == Resources(cpu=0.5, gpu=2, custom={"big_memory": 1.0})
    assert parse_spec(spec.to_dict()) == spec
    assert spec.resources.task_options() == {"num_cpus": 0.5, "num_gpus": 2, "resources": {"big_memory": 1.0}}
    plain = parse_spec(base_spec())
    assert plain.to_dict()["resources"] == {"cpu": 1.0, "gpu": 0.0}  # specs stored before `custom` are unchanged
    assert "resources" not in plain.resources.task_options()


# ------------------------------------------------------------------ on a real Ray
def test_sweeplab_run_refuses_resources_no_node_has_with_exit_2_before_any_trial(stores, tmp_path):
    """Today's hang: Ray queues a trial no node can run. Now: exit 2, every missing resource
    named, the local Ray's node listed, no study and no MLflow experiment created."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(base_spec(resources={"cpu": 64, "gpu": 1, "custom": {"nobody_has_this": 1}})))
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SWEEPLAB_STORAGE", "RAY_ADDRESS")}
    started = time.time()
    out = subprocess.run([sys.executable, "-m", "sweeplab.cli", "run", str(spec), "--storage", stores["storage"],
                          "--tracking-uri", stores["tracking"]], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-3000:]
    for fragment in ("resources.cpu: a trial asks for 64 CPUs", "resources.gpu: a trial asks for 1 GPU",
                     "resources.custom.nobody_has_this:", "The Ray cluster's nodes:\n", "(head): CPU "):
        assert fragment in out.stderr, out.stderr[-3000:]
    assert time.time() - started < 240
    assert optuna.get_all_study_summaries(stores["storage"], include_best_trial=False) == []
    assert MlflowClient(stores["tracking"]).get_experiment_by_name("res") is None


GPU_SCRIPT = textwrap.dedent('''
    """Two studies on one logical GPU: shares of 0.5 run together on it, whole GPUs one at a time."""
    import json, os, sys, time

    import ray

    import sweeplab
    from sweeplab.core.errors import ResourceError
    from sweeplab.objectives.devices import trial_device

    storage, tracking, out = sys.argv[1:4]
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)


    def probe(ctx):
        """Waits up to options.wait seconds for the other trial of its study to start; records where it ran."""
        folder = ctx.settings.options["folder"]
        start = time.time()
        open(os.path.join(folder, f"start-{ctx.trial_number}"), "w").close()
        while time.time() < start + ctx.settings.options["wait"]:
            if len([n for n in os.listdir(folder) if n.startswith("start-")]) >= 2:
                break
            time.sleep(0.05)
        record = {"trial": ctx.trial_number, "start": start, "end": time.time(), "pid": os.getpid(),
                  "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                  "gpus": ctx.gpus, "device": trial_device(ctx.gpus)}
        with open(os.path.join(folder, f"trial-{ctx.trial_number}.json"), "w") as f:
            json.dump(record, f)
        return {"score": 1.0}


    def study(name, gpu, wait):
        folder = os.path.join(out, name)
        os.makedirs(folder)
        spec = {"study": name, "direction": "maximize", "metric": "score", "trials": 2, "workers": 2,
                "sampler": {"name": "random"}, "resources": {"cpu": 0.5, "gpu": gpu},
                "objective": {"options": {"folder": folder, "wait": wait}},
                "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}}}
        return sweeplab.run(spec, objective=probe, storage=storage, tracking_uri=tracking, progress=False)


    print(json.dumps({"half": study("half", 0.5, 60).n_complete, "whole": study("whole", 1, 3).n_complete}))
    try:
        study("two", 2, 0)
    except ResourceError as exc:
        print(json.dumps({"refused": str(exc)}))
''')


@pytest.mark.slow
def test_gpu_shares_run_together_on_one_gpu_and_whole_gpus_one_at_a_time(stores, tmp_path):
    script = tmp_path / "gpus.py"
    script.write_text(GPU_SCRIPT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SWEEPLAB_STORAGE", "RAY_ADDRESS")}
    out = subprocess.run([sys.executable, str(script), stores["storage"], stores["tracking"], str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines[0] == {"half": 2, "whole": 2}
    assert "resources.gpu: a trial asks for 2 GPU, but no node of the Ray cluster has more than 1 GPUs" in \
        lines[1]["refused"]

    import torch

    device = "cuda:0" if torch.cuda.is_available() else "cpu"

    def trials(name):
        return sorted((json.loads(p.read_text()) for p in (tmp_path / name).glob("trial-*.json")),
                      key=lambda r: r["start"])

    half = trials("half")
    assert len(half) == 2
    assert half[1]["start"] < half[0]["end"]  # both ran at once...
    assert [r["gpu_ids"] for r in half] == [["0"], ["0"]]  # ...on the same GPU
    assert [r["visible"] for r in half] == ["0", "0"] and [r["gpus"] for r in half] == [0.5, 0.5]
    assert [r["device"] for r in half] == [device, device]

    whole = trials("whole")
    assert len(whole) == 2
    assert whole[1]["start"] >= whole[0]["end"]  # one at a time: the second waited for the GPU
    assert [r["gpu_ids"] for r in whole] == [["0"], ["0"]]
    assert whole[0]["pid"] != whole[1]["pid"]  # each GPU trial in a fresh worker process
