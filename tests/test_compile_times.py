"""benchmarks/compile_times.py measures one tiny config end to end (in its child process),
so the script cannot rot between full runs."""

import json
import os

from benchmarks import compile_times as ct


def test_config_specs_name_a_file_and_a_variant():
    assert ct.parse_spec("adding") == ("adding", os.path.join(ct.CONFIG_DIR, "adding.py"), None)
    assert ct.parse_spec("configs/adding.py:smoke")[1:] == (
        os.path.join(ct.CONFIG_DIR, "adding.py"), "smoke")
    # the variant is everything after the first colon, as on a run's command line
    assert ct.parse_spec("irnn_adding:le2015:150") == (
        "irnn_adding:le2015:150", os.path.join(ct.CONFIG_DIR, "irnn_adding.py"), "le2015:150")
    assert ct.parse_spec("copy", default_variant="smoke")[2] == "smoke"
    assert "adding" in ct.all_configs() and "__init__" not in ct.all_configs()


def test_smoke_config_has_positive_train_and_eval_compile_times(tmp_path, capsys):
    out = tmp_path / "ct.json"
    ct.main(["--configs=configs/adding.py:smoke", "--steps=train,eval", f"--json={out}",
             "--timeout=120"])
    data = json.loads(out.read_text())
    (row,) = data["rows"]
    assert row["status"] == "ok", row
    assert row["config"] == "adding:smoke" and row["variant"] == "smoke"
    assert "smoke" in row["variants"] and row["default"] == "cpu"
    for key in ("train_lower_s", "train_compile_s", "eval_lower_s", "eval_compile_s"):
        assert row[key] > 0, key
    assert row["train_hlo"]["instructions"] > 0 and len(row["loadavg"]) == 3
    assert data["machine"]["cpu_count"] == os.cpu_count() and data["machine"]["jax"]
    assert "| adding:smoke |" in capsys.readouterr().out
