"""Launchers of a sweep: local worker processes equal the in-process sweep, a failing member
is recorded while the others finish, a rerun skips finished members, and the SLURM array
job's sbatch script carries the flags' partition, time, GPUs, CPUs and parallelism."""

import json
import os
import subprocess
import sys

import pytest

from seqjax import launch, rundir, sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 4 members (2 seeds x rnn/lstm) of the adding smoke config: seconds each.
SWEEP_CONFIG = '''
from configs.adding import get_config as adding_config


def get_config(variant=""):
    c = adding_config("smoke")
    c.train.update(num_steps=4, eval_every=0, diagnostics_every=0, checkpoint_every=2)
    c.sweep.seed = [0, 1]
    c.sweep.model = {"cell": ["rnn", "lstm"]}
    if variant == "nan":  # one arm whose learning rate sends the loss to Inf at once
        c.sweep.seed = [0]
        c.sweep.model = {"cell": ["rnn"]}
        c.sweep_arms = ("fine: train.learning_rate=0.003", "huge: train.learning_rate=1e30")
    return c
'''

# A sweep without the command line's figures: train_and_evaluate with a launcher.
TRAIN = '''
import runpy, sys
from seqjax import launch, train
path, _, variant = sys.argv[1].partition(":")
launcher = launch.defaults(sys.argv[3])
launcher.workers = 2
train.train_and_evaluate(runpy.run_path(path)["get_config"](variant), sys.argv[2], launcher)
'''


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, SEQJAX_COMPILATION_CACHE="off")  # XLA_FLAGS: the session's
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def _train(config: str, workdir, kind: str) -> subprocess.CompletedProcess:
    return _run(["-c", TRAIN, config, str(workdir), kind])


def _metrics(member_dir) -> list[dict]:
    """metrics.jsonl without the rows' wall-clock speed."""
    with open(os.path.join(member_dir, rundir.METRICS_FILE)) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [{k: v for k, v in row.items() if k != "train/steps_per_sec"} for row in rows]


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("configs") / "launcher_sweep.py"
    path.write_text(SWEEP_CONFIG)
    return str(path)


@pytest.mark.slow  # ≈ 60 s: worker processes each compile their own programs
def test_local_workers_equal_the_in_process_sweep_and_rerun_skips(config_file, tmp_path):
    seq, par = tmp_path / "inprocess", tmp_path / "local"
    done = _train(config_file, seq, "inprocess")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[sweep] member 1 of 4:" in done.stdout and "member 4 of 4" in done.stdout
    done = _run(["-m", "experiments.main", f"--config={config_file}", f"--workdir={par}",
                 "--launcher=local", "--launcher.workers=2"])  # the command line, figures too
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 of 4 members done" in done.stdout
    names = json.loads((seq / rundir.SWEEP_FILE).read_text())["members"]
    assert len(names) == 4
    assert json.loads((par / rundir.SWEEP_FILE).read_text()) == \
        json.loads((seq / rundir.SWEEP_FILE).read_text())
    summary = json.loads((par / rundir.SUMMARY_FILE).read_text())["members"]
    assert list(summary) == names and all(s["steps"] == 4 for s in summary.values())
    for name in names:  # bit-identical trajectories: same code, config and seed
        assert _metrics(par / name) == _metrics(seq / name), name

    # Rerun: finished members are skipped; one without its summary resumes alone.
    os.remove(par / names[1] / rundir.SUMMARY_FILE)
    before = _metrics(par / names[1])
    again = _train(config_file, par, "local")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3 of 4 members already finished" in again.stdout
    assert "1 of 4 members done" not in again.stdout  # progress counts the skipped ones
    assert "4 of 4 members done" in again.stdout
    assert (par / names[1] / rundir.SUMMARY_FILE).exists()
    assert _metrics(par / names[1]) == before
    assert json.loads((par / rundir.SUMMARY_FILE).read_text())["members"].keys() == \
        summary.keys()


@pytest.mark.slow  # more worker processes
def test_a_diverging_member_is_recorded_and_the_others_finish(config_file, tmp_path):
    done = _train(config_file + ":nan", tmp_path, "local")
    assert done.returncode == 1
    assert "SweepDivergedError" in done.stderr and "huge" in done.stderr
    summary = json.loads((tmp_path / rundir.SUMMARY_FILE).read_text())["members"]
    assert len(summary) == 2
    for name, s in summary.items():
        if name.startswith("huge"):
            assert "error" in s and (tmp_path / name / rundir.DIVERGED_FILE).exists()
        else:
            assert s["steps"] == 4 and "error" not in s


@pytest.mark.slow  # more worker processes
def test_a_failed_job_is_recorded_and_named_at_the_end(tmp_path):
    """A job that raised (or died) is a failure record; the others' summaries stay."""
    from configs.adding import get_config
    config = get_config("smoke")
    with config.unlocked():
        config.sweep.seed = [0, 1, 2]
    members = sweep.sweep_members(config)

    def run_jobs(jobs, workdir):
        yield 1, {"failed": "RuntimeError: worker lost", "log": "job.err"}
        for i in (0, 2):
            yield i, {"summaries": [{"steps": 6, "seed": i}]}

    with pytest.raises(sweep.SweepFailedError, match="seed=1: RuntimeError: worker lost"):
        sweep.run_sweep(config, str(tmp_path), members, None, run_jobs)
    summary = json.loads((tmp_path / rundir.SUMMARY_FILE).read_text())["members"]
    assert list(summary) == ["seed=0", "seed=1", "seed=2"]
    assert summary["seed=1"]["failed"] == "RuntimeError: worker lost"
    assert summary["seed=2"] == {"steps": 6, "seed": 2}


def test_slurm_submits_one_array_job_with_the_flags(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    scripts = []

    class Sbatch(Exception):
        pass

    def capture(self, command):
        scripts.append(self._make_submission_file_text(command, "uid"))
        raise Sbatch  # stands in for sbatch: nothing is submitted

    monkeypatch.setattr(submitit.SlurmExecutor, "_submit_command", capture)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    launcher = launch.defaults("slurm")
    launcher.update(workers=2, partition="gpu", time=90, gpus=1, cpus=8,
                    setup="module load cuda; source .venv/bin/activate")
    jobs = [([(None, str(tmp_path / f"m{i}"))], None) for i in range(4)]
    with pytest.raises(Sbatch):
        list(launch.run_jobs(launcher, len, jobs, str(tmp_path)))
    script, = scripts
    for line in ("#SBATCH --array=0-3%2", "#SBATCH --partition=gpu", "#SBATCH --time=90",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --ntasks-per-node=1", "module load cuda",
                 "source .venv/bin/activate"):
        assert line in script, (line, script)


def test_launcher_flag_takes_a_kind_then_fields():
    parser = launch.KindOrFields(type("Inner", (), {"parse": lambda self, c: c})())
    assert parser.parse("local").kind == "local"
    with pytest.raises(ValueError, match="choose one of"):
        parser.parse("locl")
    assert launch.core_shares(2, [0, 1]) == [[0], [1]]
    assert launch.core_shares(2, [0, 1, 2, 3, 4]) == [[0, 1, 2], [3, 4]]
    assert launch.core_shares(3, [0, 1]) == [[0], [1], [0]]
