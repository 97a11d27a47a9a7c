"""Tasks: how batches are made, their losses, metrics and trivial baselines. ``TASKS`` maps
``config.task.name`` to a Task class (see seqjax.tasks.base for the interface)."""

from seqjax.tasks.adding import AddingTask
from seqjax.tasks.copy import CopyTask
from seqjax.tasks.temporal_order import TemporalOrderTask

TASKS = {t.name: t for t in (AddingTask, TemporalOrderTask, CopyTask)}


def register_task(cls) -> None:
    TASKS[cls.name] = cls


def get_task_class(name: str):
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


# Issue 7: one-to-many and many-to-many (captioning, translation, frame labelling).
from seqjax.tasks.caption import CaptionFlickr8kTask, CaptionMnistTask  # noqa: E402
from seqjax.tasks.frames import FramesTask  # noqa: E402
from seqjax.tasks.translate import TranslateTask  # noqa: E402

for _task in (CaptionMnistTask, CaptionFlickr8kTask, TranslateTask, FramesTask):
    register_task(_task)

# Issue 4: real data through TFDS (sequential MNIST, IMDB sentiment, series forecasting).
from seqjax.tasks.forecast import ForecastTask  # noqa: E402
from seqjax.tasks.imdb import ImdbTask  # noqa: E402
from seqjax.tasks.smnist import SequentialMnistTask  # noqa: E402

for _task in (SequentialMnistTask, ImdbTask, ForecastTask):
    register_task(_task)
