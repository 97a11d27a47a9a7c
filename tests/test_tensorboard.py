"""What TensorBoard shows of a run, read back as TensorBoard reads it: the HParams tab
(config fields and final metrics of every run and sweep member), the learning rate at each
logged step, text under its tag; and the patch that makes tensorboardX write in the
caller's thread, which relies on tensorboardX's private attributes."""

import errno
import importlib
import json
import os
import threading

import optax
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from seqjax import rundir, train
from seqjax.writer import Writer, _raw_file, read_metrics

PEAK, WARMUP = 3e-3, 4


def events(workdir):
    acc = EventAccumulator(workdir, size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def hparams_of(acc):
    """(experiment, session start, session end) of a run, parsed from its hparams summaries."""
    content = acc.PluginTagToContent("hparams")
    parse = lambda tag: plugin_data_pb2.HParamsPluginData.FromString(content[tag])
    return (parse("_hparams_/experiment").experiment,
            parse("_hparams_/session_start_info").session_start_info,
            parse("_hparams_/session_end_info").session_end_info)


def values(start_info) -> dict:
    return {k: v.string_value if v.HasField("string_value") else v.number_value
            for k, v in start_info.hparams.items()}


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


@pytest.fixture(scope="module")
def warmup_run(tmp_path_factory):
    """The adding smoke run (6 steps, logged every 2) with a linear warmup over 4 steps."""
    workdir = str(tmp_path_factory.mktemp("warmup"))
    c = importlib.import_module("configs.adding").get_config("smoke")
    c.train.schedule, c.train.warmup_steps, c.train.learning_rate = "warmup_cosine", WARMUP, PEAK
    c.train.diagnostics_every = 0
    return workdir, c, train.train_and_evaluate(c, workdir)


@pytest.fixture(scope="module")
def vmapped_sweep(tmp_path_factory):
    """Two members that differ in learning rate, trained as one vmapped group."""
    workdir = str(tmp_path_factory.mktemp("sweep"))
    c = importlib.import_module("configs.adding").get_config("smoke")
    c.train.schedule, c.train.vmap_sweep, c.train.diagnostics_every = "cosine", "on", 0
    c.sweep.train = {"learning_rate": [1e-3, 3e-3]}
    train.train_and_evaluate(c, workdir)
    return rundir.run_dirs(workdir)


def test_hparams_name_the_config_and_the_final_metrics(warmup_run):
    workdir, c, summary = warmup_run
    experiment, start, end = hparams_of(events(workdir))
    hp = values(start)
    assert {"model.cell": "lstm", "model.hidden": 8, "task.seq_len": 12, "task.name": "adding",
            "model.kind": "recurrent", "train.optimizer": "adam", "train.batch_size": 8,
            "model.forget_bias": 1.0, "model.recurrent_init": "orthogonal", "model.init_preset": "seqjax",
            "model.activation": "tanh", "train.schedule": "warmup_cosine", "seed": 0} \
        .items() <= hp.items()
    assert hp["train.learning_rate"] == pytest.approx(PEAK)
    assert {h.name for h in experiment.hparam_infos} == set(hp) == set(train.HPARAMS)
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert metric_tags == {f"hparams/eval/{k}" for k in summary["final_eval"]}
    assert end.status == 1  # STATUS_SUCCESS
    # the metrics the HParams tab shows are scalars of this run, at its last step
    acc = events(workdir)
    for tag in metric_tags:
        [(step, value)] = scalars(acc, tag)
        assert step == c.train.num_steps
        assert value == pytest.approx(summary["final_eval"][tag.rsplit("/", 1)[-1]], rel=1e-6)
    assert not [d for d in os.listdir(workdir)  # no sub-run directory (add_hparams makes one)
                if os.path.isdir(os.path.join(workdir, d)) and d != rundir.CHECKPOINTS_DIR]


def test_learning_rate_follows_the_schedule(warmup_run):
    workdir, c, _ = warmup_run
    logged = scalars(events(workdir), "train/learning_rate")
    assert [s for s, _ in logged] == [2, 4, 6]  # with the train/ metrics
    # at step s: the rate of update s, which optax computes from the s - 1 updates before
    expected = optax.warmup_cosine_decay_schedule(0.0, PEAK, WARMUP, c.train.num_steps)
    for step, value in logged:
        assert value == pytest.approx(float(expected(step - 1)), rel=1e-6)
    assert train.learning_rate_at(c.train, PEAK, 0) == 0.0  # warmup starts at 0
    assert 0 < logged[0][1] < logged[1][1] <= PEAK  # and grows during it
    assert logged[2][1] < logged[1][1]  # then decays


def test_metrics_jsonl_holds_neither_learning_rate_nor_hparams(warmup_run):
    keys = set().union(*read_metrics(warmup_run[0]))
    assert "train/learning_rate" not in keys
    assert not [k for k in keys if k.startswith("hparams/")]


@pytest.mark.slow  # a vmapped sweep's compile; one run covers the default suite
def test_each_member_of_a_vmapped_group_logs_its_own(vmapped_sweep):
    assert len(vmapped_sweep) == 2
    for member, peak in zip(vmapped_sweep, (1e-3, 3e-3)):
        with open(os.path.join(member, rundir.CONFIG_FILE)) as f:
            t = json.load(f)["train"]
        assert t["learning_rate"] == peak
        acc = events(member)
        assert values(hparams_of(acc)[1])["train.learning_rate"] == pytest.approx(peak)
        assert "hparams/eval/mse" in acc.Tags()["scalars"]
        schedule = optax.cosine_decay_schedule(peak, t["num_steps"])
        logged = scalars(acc, "train/learning_rate")
        assert [s for s, _ in logged] == [2, 4, 6]
        for step, value in logged:
            assert value == pytest.approx(float(schedule(step - 1)), rel=1e-6)


def test_text_is_read_back_under_tag_slash_text_summary(tmp_path):
    """tensorboardX's text summary appends ``/text_summary`` to the tag (what TensorBoard's
    Text tab and EventAccumulator show; docs/configuration.md says so)."""
    w = Writer(str(tmp_path))
    w.text(3, "text/examples", "a | b")
    w.close()
    acc = events(str(tmp_path))
    assert acc.Tags()["tensors"] == ["text/examples/text_summary"]
    [event] = acc.Tensors("text/examples/text_summary")
    assert event.step == 3 and event.tensor_proto.string_val == [b"a | b"]


# ---- the patch on tensorboardX's private attributes (seqjax.writer._sync_events)


def test_tensorboardx_attributes_the_writer_relies_on(tmp_path):
    w = Writer(str(tmp_path))
    events = w._events
    for name in ("_ev_writer", "_closed", "_worker"):
        assert hasattr(events, name), f"tensorboardX's EventFileWriter has no {name}"
    assert hasattr(events._ev_writer, "_file_name")
    assert hasattr(events._ev_writer, "_py_recordio_writer")
    assert _raw_file(events) is not None and hasattr(_raw_file(events), "write")
    # events are written through to the file, not queued for tensorboardX's thread
    assert events.add_event == events._ev_writer.write_event
    assert w._tb._get_file_writer().event_writer is events
    w.close()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_failed_event_write_raises_in_the_callers_thread(tmp_path):
    """A full disk under the event file (/dev/full: every flush fails with ENOSPC) raises an
    OSError naming the event file where the scalar was written, and then the writer stops."""
    w = Writer(str(tmp_path))
    path = w._events_path()
    record_writer = w._events._ev_writer._py_recordio_writer
    record_writer._writer.close()
    record_writer._writer = open("/dev/full", "wb")
    caught = []

    def log():  # in a thread of its own, so a writer that hangs fails the test
        try:
            w.scalars(1, {"train/learning_rate": 1e-3})
        except OSError as e:
            caught.append(e)

    caller = threading.Thread(target=log, daemon=True)
    caller.start()
    caller.join(timeout=60)
    assert not caller.is_alive(), "the write hung instead of raising"
    assert len(caught) == 1, "no OSError reached the caller"
    error = caught[0]
    assert error.errno == errno.ENOSPC and error.filename == path
    assert not w.enabled
    w.write(2, {"train/loss": 1.0})  # stopped: writes nothing, raises nothing
    w.close()
