"""The command line of a run: ``--config`` and ``--workdir``, nothing else.

    python -m experiments.main --config=configs/vanishing.py --workdir=runs/vanishing
    seqjax-train --config=configs/adding.py:smoke --workdir=/tmp/a --config.model.hidden=32

``experiments/main.py`` (from a clone) and the installed ``seqjax-train`` both call ``run()``.

After training it writes the figures into <workdir>/figures/ and prints the final numbers,
where the figures are and the TensorBoard command.

Errors a user can fix (a bad flag or config value, a workdir of another experiment, missing
data, a full disk, NaN) print one paragraph, ``error: ...``, on stderr and exit with 1; no
traceback. SIGTERM or Ctrl-C saves a checkpoint, prints the command that resumes, and exits
with 128 + the signal number (143, 130); rerunning the same command always resumes.
"""

import difflib
import logging as std_logging
import os
import re
import runpy
import shlex
import sys
import warnings

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from seqjax import config as config_lib
from seqjax import launch, train
from seqjax.tasks import TASKS

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file[:variant]",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for logs, checkpoints, figures")
_LAUNCHER = launch.define_flag("launcher")  # a machine's setting: never in config.json
flags.mark_flags_as_required(["config", "workdir"])


class _OneLine(std_logging.Filter):
    """Library log records as one line each, without tracebacks: orbax logs every failed
    background write with its traceback, and the ``error:`` paragraph at the end says what
    happened and what to do. ``--verbosity=0`` (or higher) keeps them whole."""

    def filter(self, record):
        text = record.getMessage().strip()
        lines = text.splitlines() or [""]
        record.msg = lines[0][:240] + (" [...]" if len(lines) > 1 or len(lines[0]) > 240 else "")
        record.args, record.exc_info, record.exc_text, record.stack_info = None, None, None, None
        return True


def _quiet_closed_loop(unraisable, default=sys.unraisablehook):
    """After a checkpoint fails to restore, tensorstore still completes the reads orbax
    started, into the event loop orbax has closed: a harmless 'Event loop is closed' per
    read, printed as a traceback. Dropped; any other unraisable exception is printed."""
    if not (isinstance(unraisable.exc_value, RuntimeError) and
            "Event loop is closed" in str(unraisable.exc_value)):
        default(unraisable)


def _fail(message: str, code: int = 1):
    if not flags.FLAGS["verbosity"].present:  # the error is the last word: no late library logs
        logging.set_verbosity(logging.FATAL)
    # A checkpoint write cut short (a full disk) leaves orbax's per-fragment coroutines
    # unawaited; Python would warn about each one at exit, after the error.
    warnings.filterwarnings("ignore", r"coroutine .* was never awaited", RuntimeWarning)
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def _overrides(argv) -> list[tuple[str, str | None]]:
    """[(dotted key, value or None)] of the ``--config.x.y=v`` arguments."""
    out = []
    for i, a in enumerate(argv[1:], 1):
        if a.startswith("--config."):
            key, eq, value = a[len("--config."):].partition("=")
            out.append((key, value if eq else (argv[i + 1] if i + 1 < len(argv) else None)))
    return out


def _known_keys(with_tasks: bool) -> dict:
    known = config_lib._flatten(config_lib.base_config())
    if with_tasks:  # the task's own fields: only when a task.* key is asked about
        for task in TASKS.values():
            known |= {f"task.{k}": v for k, v in task.config_defaults.items()}
    return known


def _last_line(e: BaseException) -> str:
    lines = [l.strip() for l in str(e).strip().splitlines() if l.strip()]
    errors = [l for l in lines if re.match(r"^\w*(Error|Exception): ", l)]
    return errors[-1] if errors else (lines[-1] if lines else type(e).__name__)


def _in_config(key: str, argv) -> bool:
    """Whether the config of ``--config=file[:variant]`` has the dotted ``key`` (its sweep
    fields, say, which base_config does not list)."""
    try:
        arg = next(a.split("=", 1)[1] for a in argv if a.startswith("--config="))
        path, _, variant = arg.partition(":")
        get_config = runpy.run_path(path)["get_config"]
        node = get_config(variant) if variant else get_config()
        for part in key.split("."):
            node = node[part]
        return True
    except Exception:  # no loadable config, or no such key
        return False


def _flag_error(e: Exception, argv) -> str:
    """One clear line for a flag that did not parse."""
    for key, value in _overrides(argv):
        known = _known_keys(key.startswith("task."))
        if key not in known and not any(k.startswith(key + ".") for k in known) \
                and not _in_config(key, argv):
            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else (
                "; the config keys are the fields of base_config() in seqjax/config.py")
            return f"unknown config key {key!r} in --config.{key}{hint}"
    m = re.match(r"flag --config\.([\w.]+)=(.*?): (.*)", str(e).splitlines()[0])
    if m:
        key, value, detail = m.groups()
        default = _known_keys(key.startswith("task.")).get(key)
        kind = f"takes {type(default).__name__} values" if default is not None else \
            "takes another type"
        return f"--config.{key}={value}: {key} {kind}, got {value!r} ({detail})"
    if not isinstance(e, flags.Error) or "config file" in str(e).lower():
        path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "")
        line = _last_line(e)
        if not isinstance(e, flags.Error) and not line.startswith(type(e).__name__):
            line = f"{type(e).__name__}: {line}"
        return f"cannot load --config={path}: {line}"
    return _last_line(e)


def _config_package_on_path(argv) -> None:
    """Config files import each other as the package ``configs`` (``from configs.adding
    import apply_variant``). Run from anywhere, the directory that holds that package goes
    on ``sys.path``, as it is when ``python -m experiments.main`` runs in the clone."""
    arg = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "")
    folder = os.path.dirname(os.path.abspath(arg.partition(":")[0])) if arg else ""
    if os.path.exists(os.path.join(folder, "__init__.py")):
        root = os.path.dirname(folder)
        if root not in sys.path:
            sys.path.insert(0, root)


def _parse_flags(argv):
    _config_package_on_path(argv)
    try:
        return flags.FLAGS(argv)
    except Exception as e:  # flags.Error, and what ml_collections raises for an override
        _fail(_flag_error(e, argv))


def _resume_command(argv) -> str:
    """This command again, without a train.resume override (it would start anew)."""
    args, skip = [], False
    for a in argv[1:]:
        if skip:
            skip = False
        elif a.startswith("--config.train.resume"):
            skip = "=" not in a
        else:
            args.append(a)
    return f"cd {shlex.quote(os.getcwd())} && {_command()} {shlex.join(args)}"


def _command() -> str:
    """How this process was started: the installed script, or the module from a clone."""
    script = os.path.basename(sys.argv[0])
    return script if script.startswith("seqjax-") else "python -m experiments.main"


def _compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache: a resumed or repeated run loads its
    compiled steps from disk instead of compiling them again. A machine's setting, not an
    experiment's, so environment variables choose it (docs/configuration.md):
    ``SEQJAX_COMPILATION_CACHE`` a directory, or ``off``; default ``~/.cache/seqjax/jax``
    (under ``$XDG_CACHE_HOME`` when set). When ``JAX_COMPILATION_CACHE_DIR`` is set JAX
    already uses it and nothing is changed here. Compiles under 1 s are not cached. The
    directory in use, or None."""
    setting = os.environ.get("SEQJAX_COMPILATION_CACHE", "").strip()
    if setting.lower() in ("off", "0", "false", "no") or \
            os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    cache_dir = os.path.abspath(os.path.expanduser(setting or os.path.join(base, "seqjax", "jax")))
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError:  # a read-only home, say: compile as without the cache
        return None
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    if not os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return cache_dir


def _print_report(workdir: str) -> None:
    from seqjax import report  # matplotlib (≈1.5 s to import): not for runs that stop on bad input
    report.print_report(workdir)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    _compilation_cache()
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
        logging.get_absl_handler().addFilter(_OneLine())
        sys.unraisablehook = _quiet_closed_loop
    config = _CONFIG.value
    if type(config).__name__ == "_ErrorConfig":  # ml_collections' stand-in for a failed load
        path = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--config=")), "")
        _fail(f"cannot load --config={path}: {_last_line(config.__dict__['_error'])}")
    try:
        train.train_and_evaluate(config, _WORKDIR.value, _LAUNCHER.value)
        if jax.process_index() == 0:  # one host draws the figures
            _print_report(_WORKDIR.value)
    except train.TrainingInterrupted as e:
        print(f"{e}.\nTo resume, run:\n  {_resume_command(sys.argv)}", file=sys.stderr)
        sys.exit(128 + e.signum)
    except train.SweepDivergedError as e:  # the other members finished: show what they found
        if jax.process_index() == 0:
            _print_report(_WORKDIR.value)
        _fail(str(e))
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once
        print("interrupted again: stopped without saving. The newest complete checkpoint is "
              f"kept; to resume from it, run:\n  {_resume_command(sys.argv)}", file=sys.stderr)
        sys.exit(130)
    except (ValueError, OSError, train.NonFiniteLossError, train.StorageError,
            train.WorkdirInUse) as e:
        _fail(str(e))


def run():
    """Entry point of ``seqjax-train`` and ``python -m experiments.main``."""
    app.run(main, flags_parser=_parse_flags)
