"""Tasks: how batches are made, their losses, metrics and trivial baselines. ``TASKS`` maps
``config.task.name`` to a Task class (see seqjax.tasks.base for the interface)."""

from seqjax.tasks.adding import AddingTask
from seqjax.tasks.caption import CaptionFlickr8kTask, CaptionMnistTask
from seqjax.tasks.copy import CopyTask
from seqjax.tasks.forecast import ForecastTask
from seqjax.tasks.frames import FramesTask
from seqjax.tasks.imdb import ImdbTask
from seqjax.tasks.smnist import SequentialMnistTask
from seqjax.tasks.temporal_order import TemporalOrderTask
from seqjax.tasks.translate import TranslateTask

TASKS = {t.name: t for t in (
    AddingTask, TemporalOrderTask, CopyTask,                             # synthetic
    CaptionMnistTask, CaptionFlickr8kTask, TranslateTask, FramesTask,    # one/many-to-many
    SequentialMnistTask, ImdbTask, ForecastTask,                         # real data, TFDS
)}


def register_task(cls) -> None:
    TASKS[cls.name] = cls


def get_task_class(name: str):
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]
