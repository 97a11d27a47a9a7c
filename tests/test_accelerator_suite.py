"""benchmarks/accelerator_suite.py runs on a CPU with tiny sizes (--dry-run), so that the
command prepared for the first accelerator cannot rot before one is lent."""

import json
import os

import pytest

from benchmarks import accelerator_suite as suite
from tests.realdata_helpers import shared


def read(out):
    with open(os.path.join(out, "suite.json")) as f:
        data = json.load(f)
    with open(os.path.join(out, "suite.md")) as f:
        return data, f.read()


def test_one_section_dry_run_writes_its_numbers_and_the_table(tmp_path):
    suite.main(["--dry-run", "--only=parallel_scan", f"--out={tmp_path}"])
    data, md = read(tmp_path)
    (row,) = data["sections"]
    assert row["name"] == "parallel_scan" and row["status"] == "ok", row
    speedups = row["numbers"]["speedup_vs_own_scan"]
    assert set(speedups) == {f"{c} {i} T=16" for c in ("mingru", "minlstm", "lru")
                             for i in ("parallel", "parallel_chunked")}
    assert all(v > 0 for v in speedups.values())
    assert data["dry_run"] and "| parallel_scan | ok |" in md and "(dry run, tiny sizes)" in md


def test_gpu_commands_fit_the_eight_minute_budget_and_name_every_section(tmp_path):
    secs = suite.sections(str(tmp_path), dry=False, mnist_dir="/m")
    assert [s["name"] for s in secs] == ["steps_f32", "steps_bf16", "parallel_scan",
                                         "vmapped_seeds", "pixel_mnist", "headline"]
    assert sum(s["budget_s"] for s in secs) <= suite.BUDGET_S <= 8 * 60
    pixel = next(s for s in secs if s["name"] == "pixel_mnist")["argv"]
    assert "--config=configs/smnist.py:pixels:gpu" in pixel
    assert "--config.train.num_steps=2000" in pixel


def test_unknown_section_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit):
        suite.main(["--dry-run", "--only=steps_f64", f"--out={tmp_path}"])
    assert "--only=steps_f64: sections are steps_f32, steps_bf16" in capsys.readouterr().err


def test_a_section_without_its_data_is_skipped_and_says_why(tmp_path):
    suite.main(["--dry-run", "--only=pixel_mnist", f"--out={tmp_path}",
                f"--mnist-dir={tmp_path}/none"])
    (row,), _ = read(tmp_path)[0]["sections"], None
    assert row["status"] == "skipped" and f"no directory {tmp_path}/none" in row["why"]


@pytest.mark.slow  # every section as a child process: about 3 minutes on 2 cores
def test_whole_dry_run(tmp_path):
    suite.main(["--dry-run", f"--out={tmp_path}", f"--mnist-dir={shared('mnist')}"])
    data, md = read(tmp_path)
    assert [r["status"] for r in data["sections"]] == ["ok"] * 6, data["sections"]
    assert "steps_bf16:" in md and "| lstm | XS bfloat16 | seqjax scan |" in md
    assert set(data["sections"][5]["numbers"]) == {"cell=rnn", "cell=lstm"}
