"""Multi-worker training, proven with two real worker processes on loopback.

Two ``dermtool train`` processes (the same command, each with its own ``TF_CONFIG``; worker 0 is the chief)
train ``configs/smoke.toml`` with ``train.strategy = "multi_worker"`` on 42 real HAM10000 images (64 px,
global batch 16 = 8 per worker, one head epoch and one fine-tuning epoch). Both get the same ``--out``, as
machines sharing a filesystem would. The run is killed (both processes, SIGKILL) once the first epoch's
checkpoint is saved, then resumed with ``--resume`` on both; the fixture runs this once for the module.

Checked: both resumed processes exit 0; only the chief writes the run folder (the worker's lines never reach
its train.log, the worker's own checkpoints go into a private folder under its TMPDIR, removed when it
finishes); the resumed run continues after epoch 1 from the checkpoint; both workers log the same weights
fingerprint after training and for the best epoch, and the chief's model.keras has that fingerprint.
About 1.5 minutes on 2 busy CPU cores.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import make_subset, pick_per_class, read_ham10000_metadata

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE = REPO_ROOT / "configs" / "smoke.toml"
TIMEOUT_S = 300  # per phase: a hung collective fails the test instead of blocking the suite
FINGERPRINT = re.compile(r"weights (after epoch \d+|of best epoch \d+): fingerprint ([0-9a-f]{16})")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Worker:
    index: int
    process: subprocess.Popen
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return f"--- worker {self.index} stdout:\n{self.stdout.read_text()}\n--- stderr:\n{self.stderr.read_text()}"


def start_cluster(data: Path, out: Path, tmp: Path, phase: str, *options: str) -> list[Worker]:
    """Two workers on loopback, each with its own TF_CONFIG and TMPDIR, running the same command."""
    addresses = [f"localhost:{port}" for port in free_ports(2)]
    workers = []
    for index in range(2):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})
        env["TMPDIR"] = str(tmp / f"tmp{index}")
        stdout, stderr = tmp / f"{phase}.{index}.out", tmp / f"{phase}.{index}.err"
        command = [sys.executable, "-m", "dermtool.cli.main", "train", "--config", str(SMOKE), "--data", str(data),
                   "--out", str(out), "--batch-size", "16", "--set", "train.strategy=multi_worker", *options]
        with open(stdout, "w") as out_handle, open(stderr, "w") as err_handle:
            process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out_handle, stderr=err_handle)
        workers.append(Worker(index, process, stdout, stderr))
    return workers


def stop(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.kill()
        worker.process.wait()


def completed_epochs(run: Path) -> int:
    state = run / "checkpoints" / "state.json"
    try:
        return json.loads(state.read_text())["completed_epochs"]
    except (OSError, ValueError, KeyError):
        return 0


def private_folders(tmp: Path, index: int) -> list[Path]:
    return sorted((tmp / f"tmp{index}").glob("dermtool-worker-*"))


def fingerprints(text: str) -> dict[str, str]:
    return dict(FINGERPRINT.findall(text))


@dataclass
class ClusterRun:
    out: Path
    tmp: Path
    killed_after: int  # epochs saved in the chief's folder when both processes were killed
    killed_private: list[Path]  # the killed worker's private folder(s), left behind by SIGKILL
    chief: Worker
    worker: Worker


@pytest.fixture(scope="module")
def cluster_run(ham10000_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ClusterRun:
    tmp = tmp_path_factory.mktemp("multi_worker")
    data = make_subset(tmp / "data", pick_per_class(read_ham10000_metadata(ham10000_dir), 6), ham10000_dir)
    for index in range(2):
        (tmp / f"tmp{index}").mkdir()
    out = tmp / "run"

    # 1. Train until the chief has saved epoch 1, then kill both (a machine lost in epoch 2).
    workers = start_cluster(data, out, tmp, "first", "--quiet")
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while completed_epochs(out) < 1:
            for worker in workers:
                if worker.process.poll() is not None:
                    pytest.fail(f"worker {worker.index} exited ({worker.process.returncode}) before epoch 1 was "
                                f"saved\n{worker.output()}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint of epoch 1 within the time limit\n"
                            + "\n".join(worker.output() for worker in workers))
            time.sleep(0.05)
    finally:
        stop(workers)
    killed_after = completed_epochs(out)
    killed_private = private_folders(tmp, 1)

    # 2. The same command with --resume on both.
    chief, worker = start_cluster(data, out, tmp, "resumed", "--resume")
    try:
        for process in (chief.process, worker.process):
            process.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the resumed run did not finish within {TIMEOUT_S} s\n{chief.output()}\n{worker.output()}")
    finally:
        stop([chief, worker])
    for each in (chief, worker):
        assert each.process.returncode == 0, each.output()
    return ClusterRun(out, tmp, killed_after, killed_private, chief, worker)


@pytest.mark.slow
def test_only_the_chief_writes_the_run_folder(cluster_run: ClusterRun) -> None:
    out, tmp = cluster_run.out, cluster_run.tmp
    for name in ("model.keras", "metrics.json", "history.csv", "config.toml", "split.csv", "labels.txt",
                 "checkpoints/state.json"):
        assert (out / name).is_file(), name
    assert f"Run folder: {out}" in cluster_run.chief.stdout.read_text()
    assert "Worker done" in cluster_run.worker.stdout.read_text()
    assert "Run folder" not in cluster_run.worker.stdout.read_text()

    log = (out / "train.log").read_text()
    assert "MultiWorker" in log or "CollectiveAllReduce" in log, log
    assert "2 replica(s)" in log
    assert "worker 1" not in log and "private folder" not in log, log  # no line of the worker's
    assert log.count("training into") == 1 and log.count("resuming") == 1, log
    # the killed worker trained in its private folder (its checkpoint is there, SIGKILL left it) ...
    assert len(cluster_run.killed_private) == 1
    # (the worker saves its copy just after the chief: on a loaded machine the kill may come in between)
    assert completed_epochs(cluster_run.killed_private[0]) in (cluster_run.killed_after - 1, cluster_run.killed_after)
    # ... and the resumed one removed its own on finishing; the chief never made one
    assert private_folders(tmp, 1) == cluster_run.killed_private
    assert private_folders(tmp, 0) == []
    resumed_stderr = cluster_run.worker.stderr.read_text()
    assert "as worker 1 (the chief writes" in resumed_stderr


@pytest.mark.slow
def test_the_resumed_run_continues_after_the_saved_epoch(cluster_run: ClusterRun) -> None:
    assert cluster_run.killed_after == 1, "the first run was killed after epoch 2 had been saved: too late"
    out = cluster_run.out
    log = (out / "train.log").read_text()
    assert f"resuming {out} after epoch 1 on" in log
    assert "restored epoch-1 (phase head)" in log
    worker_log = cluster_run.worker.stderr.read_text()
    assert "after epoch 1 on" in worker_log and "restored epoch-1 (phase head)" in worker_log
    assert completed_epochs(out) == 2
    history = (out / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2"]
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2


@pytest.mark.slow
def test_both_workers_end_with_the_same_weights(cluster_run: ClusterRun) -> None:
    from dermtool.run import RunFolder
    from dermtool.train.trainer import weights_fingerprint

    chief = fingerprints((cluster_run.out / "train.log").read_text())
    worker = fingerprints(cluster_run.worker.stderr.read_text())
    best_epoch = json.loads((cluster_run.out / "metrics.json").read_text())["best_epoch"]
    assert set(chief) == {"after epoch 2", f"of best epoch {best_epoch}"}
    assert worker == chief
    best = next(value for key, value in chief.items() if key.startswith("of best epoch"))
    assert weights_fingerprint(RunFolder(cluster_run.out).load_model()) == best


def test_which_task_writes_the_run_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's rule (no TensorFlow): worker 0, or the chief task when there is one; any task outside
    multi-worker. A worker that is not the chief never cleans up --out after a failure: it is the chief's."""
    from dermtool.train.devices import writes_run_folder

    def tf_config(task_type: str, index: int, chief: bool = False) -> str:
        cluster = {"worker": ["a:1", "b:1"], **({"chief": ["c:1"]} if chief else {})}
        return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})

    for value, expected in ((tf_config("worker", 0), True), (tf_config("worker", 1), False),
                            (tf_config("worker", 0, chief=True), False), (tf_config("chief", 0, chief=True), True)):
        monkeypatch.setenv("TF_CONFIG", value)
        assert writes_run_folder("multi_worker") is expected, value
        assert writes_run_folder("auto") is True
    monkeypatch.delenv("TF_CONFIG")
    assert writes_run_folder("multi_worker") is True  # choose_devices refuses it with its own message


def test_a_worker_cannot_resume_without_the_chiefs_folder(tmp_path: Path) -> None:
    from dermtool import DermtoolError
    from dermtool.train.trainer import worker_folder

    with pytest.raises(DermtoolError, match="worker 1 cannot resume: the chief's run folder .* shares"):
        worker_folder(tmp_path / "absent", resume=True, task="worker 1")
