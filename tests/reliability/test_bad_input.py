"""Bad input at the CLI: one clear ``error: ...`` paragraph on stderr, exit code 1, no
traceback, nothing trained. Every case is a real ``python -m experiments.main`` process; the
cases run two at a time (one fixture) and each is checked by its own test.

Real-data cases use the monthly-sunspots builder (the smallest raw file: one CSV) and need
the shared raw data ($SEQJAX_SHARED_DATA, default ../shared/data: monthly_sunspots/) only
for "seq_len longer than the data".
"""

import json
import os
from pathlib import Path

import pytest

from tests.reliability import drill

SMOKE = "--config=configs/adding.py:smoke"
SUNSPOTS_RAW = Path(os.environ.get("SEQJAX_SHARED_DATA", drill.REPO.parent / "shared" / "data"),
                    "monthly_sunspots").resolve()

# name: (arguments, the start of the expected error message; {tmp} and {workdir} filled in)
CASES = {
    "unknown key": (
        [SMOKE, "--config.model.hiden=3"],
        "error: unknown config key 'model.hiden' in --config.model.hiden; did you mean "
        "'model.hidden'?"),
    "misspelt section": (
        [SMOKE, "--config.trian.batch_size=4"],
        "error: unknown config key 'trian.batch_size' in --config.trian.batch_size; did you "
        "mean 'train.batch_size'?"),
    "misspelt task field": (
        [SMOKE, "--config.task.seq_lenn=20"],
        "error: unknown config key 'task.seq_lenn' in --config.task.seq_lenn; did you mean "
        "'task.seq_len'?"),
    "int given a word": (
        [SMOKE, "--config.model.hidden=abc"],
        "error: --config.model.hidden=abc: model.hidden takes int values, got 'abc' (invalid "
        "literal for int() with base 10: 'abc')"),
    "zero size": (
        [SMOKE, "--config.model.hidden=0"],
        "error: model.hidden must be a positive integer, got 0"),
    "negative size": (
        [SMOKE, "--config.train.batch_size=-8"],
        "error: train.batch_size must be a positive integer, got -8"),
    "seq_len too short for the task": (
        ["--config=configs/temporal_order.py:smoke", "--config.task.seq_len=5"],
        "error: temporal_order needs seq_len >= 10, got 5"),
    "missing config file": (
        ["--config=configs/nope.py"],
        "error: cannot load --config=configs/nope.py: [Errno 2] No such file or directory: "
        "'configs/nope.py'"),
    "unknown config variant": (
        ["--config=configs/adding.py:big"],
        "error: cannot load --config=configs/adding.py:big: ValueError: unknown variant 'big'; "
        "choose one of: smoke, cpu, gpu, tpu"),
    "missing raw data directory": (
        ["--config=configs/sunspots.py:smoke", "--config.data.raw_dir={tmp}/nonexistent",
         "--config.data.data_dir={tmp}/prepared-missing"],
        "error: monthly_sunspots: data.raw_dir='{tmp}/nonexistent' is not a directory."),
    "empty raw data directory": (
        ["--config=configs/sunspots.py:smoke", "--config.data.raw_dir={tmp}/empty",
         "--config.data.data_dir={tmp}/prepared-empty"],
        "error: monthly_sunspots: data.raw_dir='{tmp}/empty' is empty."),
    "corrupt raw file": (
        ["--config=configs/sunspots.py:smoke", "--config.data.raw_dir={tmp}/corrupt",
         "--config.data.data_dir={tmp}/prepared-corrupt"],
        "error: monthly_sunspots: raw file {tmp}/corrupt/monthly-sunspots.csv is not the "
        "published monthly-sunspots.csv: it has 500 bytes"),
    "seq_len longer than the data": (
        ["--config=configs/sunspots.py:smoke", f"--config.data.raw_dir={SUNSPOTS_RAW}",
         "--config.data.data_dir={tmp}/prepared-long", "--config.task.seq_len=100000"],
        "error: task.seq_len=100000 (the window) must be shorter than the training part"),
    "workdir of another experiment": (
        [*drill.DRILL_ARGS, "--config.model.cell=gru"],
        "error: workdir {workdir} holds a run of a different config (differs in: model.cell); "
        "use another --workdir, or --config.train.resume=False to move the old run aside and "
        "start anew"),
    "workdir under a file": (
        [SMOKE],
        "error: cannot write {tmp}/a-file/run: Not a directory. A parent of the workdir is a "
        "file: choose another --workdir, then run again (no checkpoint was written: it starts "
        "at step 0)."),
}


# Run with -m slow only (each case is a process of a few seconds; these repeat a kind of
# error that a default case already shows end to end).
SLOW_CASES = ("misspelt section", "misspelt task field", "negative size",
              "seq_len too short for the task", "unknown config variant",
              "empty raw data directory", "seq_len longer than the data")


def run_cases(names, cache_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-input")
    (tmp / "empty").mkdir()
    (tmp / "corrupt").mkdir()
    (tmp / "corrupt" / "monthly-sunspots.csv").write_bytes(b"x" * 500)
    (tmp / "a-file").write_text("not a directory")
    workdirs = {name: tmp / name.replace(" ", "-") for name in CASES}
    workdirs["workdir under a file"] = tmp / "a-file" / "run"
    other = workdirs["workdir of another experiment"]  # holds the drill run's config.json
    other.mkdir()
    (other / "config.json").write_text(drill.config_json(drill.DRILL_ARGS))
    cmds = {name: drill.cli(workdirs[name], *(a.format(tmp=tmp) for a in args))
            for name, (args, _) in CASES.items() if name in names}
    if not SUNSPOTS_RAW.is_dir():
        cmds.pop("seq_len longer than the data", None)
    done = drill.run_all(cmds, cache_dir, tmp / "logs")
    return {name: (rc, child, workdirs[name], tmp) for name, (rc, child) in done.items()}


@pytest.fixture(scope="module")
def results(cache_dir, tmp_path_factory):
    return run_cases([n for n in CASES if n not in SLOW_CASES], cache_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def slow_results(cache_dir, tmp_path_factory):
    return run_cases(SLOW_CASES, cache_dir, tmp_path_factory)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES
                                  else n for n in CASES])
def test_bad_input_gives_one_clear_error(request, name):
    results = request.getfixturevalue("slow_results" if name in SLOW_CASES else "results")
    if name not in results:
        pytest.skip(f"no raw data at {SUNSPOTS_RAW}")
    rc, child, workdir, tmp = results[name]
    expected = CASES[name][1].format(tmp=tmp, workdir=workdir)
    err = child.stderr
    message = drill.error_paragraph(err)
    print(f"{name}: {message}")
    assert rc == 1, (rc, err[-3000:])
    assert drill.no_traceback(err + child.stdout), err
    assert message.startswith(expected), message
    assert "step     1/" not in child.stdout  # nothing was trained
    if name == "workdir of another experiment":  # the other run's files are untouched
        assert json.loads((workdir / "config.json").read_text())["model"]["cell"] == "lstm"
        assert sorted(p.name for p in workdir.iterdir()) == ["config.json", "run.lock"]
