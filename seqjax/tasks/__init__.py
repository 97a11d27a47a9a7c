"""Tasks: how batches are made, their losses, metrics, trivial baselines and what counts as
success. ``TASKS`` maps ``config.task.name`` to a Task class (see seqjax.tasks.base for the
interface); ``SUCCESS`` maps a metric to the bound that counts as solving a task."""

from seqjax.tasks.adding import AddingTask
from seqjax.tasks.caption import CaptionFlickr8kTask, CaptionMnistTask
from seqjax.tasks.char_lm import CharLMTask
from seqjax.tasks.copy_memory import CopyTask
from seqjax.tasks.forecast import ForecastTask
from seqjax.tasks.frames import FramesTask
from seqjax.tasks.imdb import ImdbTask
from seqjax.tasks.smnist import SequentialMnistTask
from seqjax.tasks.spoken_digits import SpokenDigitsTask
from seqjax.tasks.temporal_order import TemporalOrderTask
from seqjax.tasks.translate import TranslateTask

TASKS = {t.name: t for t in (
    AddingTask, TemporalOrderTask, CopyTask,                             # synthetic
    CaptionMnistTask, CaptionFlickr8kTask, TranslateTask, FramesTask,    # one/many-to-many
    SequentialMnistTask, ImdbTask, ForecastTask, SpokenDigitsTask,       # real data, TFDS
    CharLMTask,                                                          # stateful, TBPTT
)}

# {metric: (op, bound)}: a run whose final eval has ``metric`` succeeded when ``value op bound``
# holds. Ordered: a run reporting several of these metrics is judged by the first.
SUCCESS = {metric: criterion for t in TASKS.values() for metric, criterion in t.success.items()}


def register_task(cls) -> None:
    TASKS[cls.name] = cls


def get_task_class(name: str):
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]
