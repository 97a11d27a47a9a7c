"""A workdir that cannot be written: disk full (while writing metrics, while writing a
checkpoint) and read-only. Real ENOSPC/EROFS from a small tmpfs mounted for the test (needs
root or CAP_SYS_ADMIN; without them a read-only directory is made by chmod, and the
disk-full drills are skipped). The run stops with one ``error:`` paragraph naming the file
and the newest complete checkpoint; after space is freed, rerunning the same command
resumes from that checkpoint (the half-written one is cleaned up, never used).
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability import drill

PAGE = 4096
# The drill run without gradient diagnostics: small TensorBoard files (no images), so the
# space a run needs is its checkpoints plus a page each for config, metrics and events.
ARGS = drill.DRILL_ARGS + ("--config.train.diagnostics_every=0",)


def mount_tmpfs(path: Path, kib: int, read_only: bool = False) -> str | None:
    """Mount a tmpfs of ``kib`` KiB at ``path``; None if done, else why not."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={kib}k" + (",ro" if read_only else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                       capture_output=True, text=True)
    return None if r.returncode == 0 else (r.stderr.strip() or f"mount exit {r.returncode}")


def pages(directory: Path) -> int:
    return sum(math.ceil(p.stat().st_size / PAGE) for p in directory.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def runs(reference, cache_dir, tmp_path_factory):
    """The three runs on small or read-only disks, side by side: {name: (rc, child, disk)},
    or {"skip": why} where no tmpfs can be mounted (read-only then by chmod, non-root only)."""
    tmp = tmp_path_factory.mktemp("storage")
    # Room for config/metrics/events and one and a half checkpoints (measured on the
    # reference run): the first checkpoint is written, the second runs out of space.
    ckpt = pages(Path(reference["a"]["workdir"]) / "checkpoints" / "40")
    # (the workdir's run.lock takes one page too)
    disks = {"metrics-full": (8, False),  # two pages: run.lock and config.json fit, metrics not
             "checkpoint-full": (4 * (4 + ckpt + ckpt // 2), False),
             "read-only": (64, True)}
    mounted, why = [], None
    for name, (kib, read_only) in disks.items():
        why = mount_tmpfs(tmp / name, kib, read_only)
        if why:
            break
        mounted.append(tmp / name)
    if why and os.geteuid() != 0:  # a read-only directory without root: chmod
        (tmp / "read-only").mkdir(exist_ok=True)
        os.chmod(tmp / "read-only", 0o500)
    cmds = {name: drill.cli(tmp / name / "run", *ARGS) for name in disks
            if not why or (name == "read-only" and os.geteuid() != 0)}
    done = drill.run_all(cmds, cache_dir, tmp / "logs")
    yield {name: (rc, child, tmp / name) for name, (rc, child) in done.items()} | \
        ({"skip": f"cannot mount a tmpfs here: {why}"} if why else {})
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def result(runs, name):
    if name not in runs:
        pytest.skip(runs["skip"])
    return runs[name]


def test_disk_full_while_writing_metrics(runs):
    rc, child, disk = result(runs, "metrics-full")
    message = drill.error_paragraph(child.stderr)
    print(message)
    assert rc == 1 and drill.no_traceback(child.stderr), child.stderr
    assert message == (f"error: cannot write {disk}/run/metrics.jsonl: No space left on device. "
                       f"Free some space (or move the workdir to another disk), then run again "
                       f"(no checkpoint was written: it starts at step 0).")


def test_disk_full_while_writing_a_checkpoint_then_resume(runs, reference, cache_dir, tmp_path):
    rc, child, disk = result(runs, "checkpoint-full")
    workdir = disk / "run"
    message = drill.error_paragraph(child.stderr)
    print(message)
    assert rc == 1 and drill.no_traceback(child.stderr), child.stderr
    # the file orbax failed on, or (when its error names none) the checkpoint it was writing
    assert message.startswith(f"error: cannot write {workdir}/checkpoints/8.orbax-checkpoint-tmp")
    assert message.endswith(
        f": No space left on device. The run stopped; its newest complete checkpoint is step 4 "
        f"in {workdir}/checkpoints. Free some space (or move the workdir to another disk), then "
        f"rerun the same command to resume from it.")
    # the half-written step 8 never looks complete (orbax may leave or remove its tmp dir)
    assert drill.complete_steps(workdir) == [4], drill.checkpoint_names(workdir)

    subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)  # space freed
    rc, child = drill.run(drill.cli(workdir, *ARGS), cache_dir, tmp_path / "logs")
    assert rc == 0, child.stderr[-3000:]
    assert child.resumed_from() == 4
    assert not drill.partial_saves(workdir)
    assert [r["step"] for r in drill.metrics(workdir)] == \
        [r["step"] for r in drill.metrics(reference["a"]["workdir"])]


def test_read_only_workdir(runs):
    rc, child, parent = result(runs, "read-only")
    message = drill.error_paragraph(child.stderr)
    print(message)
    assert rc == 1 and drill.no_traceback(child.stderr), child.stderr
    reason = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    assert message == (f"error: cannot write {parent}/run: {reason}. Make it writable (or "
                       f"choose a --workdir elsewhere), then run again (no checkpoint was "
                       f"written: it starts at step 0).")


def test_error_is_the_last_word_even_with_unawaited_coroutines():
    """A checkpoint write cut short by a full disk can leave orbax's fragment-writing
    coroutines unawaited; Python warns about them at exit. The CLI's error stays last."""
    script = ("import sys; sys.argv = ['x']\n"
              "from seqjax import cli\n"
              "async def write_fragment(): pass\n"
              "def save():\n"
              "    fragment = write_fragment()  # never awaited: the write fails first\n"
              "    raise OSError(28, 'No space left on device')\n"
              "try:\n"
              "    save()\n"
              "except OSError as e:\n"
              "    cli._fail(f'cannot write ckpt: {e.strerror}')\n")
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == 1, child.stderr
    assert child.stderr.strip() == "error: cannot write ckpt: No space left on device", \
        child.stderr
