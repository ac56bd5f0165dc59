"""An Optuna search as a Hydra sweeper, on Optuna's ask/tell API (Optuna >= 4).

The search space is ``params`` (``key: choice(...) | range(...) | interval(...)``, Hydra's sweep
grammar) plus any sweep given on the command line; other command-line overrides are fixed in
every trial. Each batch of ``n_jobs`` trials is asked from the study, launched as Hydra jobs by
the configured launcher (one run directory each) and told back: the job's return value, or
``FAIL`` for a job that raised or returned a non-finite value (its run directory says why). The
search goes on past failures up to ``max_failure_rate`` of a batch.

``n_trials`` is the study's total: a search resumed on the same ``storage`` (or run by several
processes at once, e.g. SLURM array tasks or two launches on one machine) runs only the trials
still missing. Asking is serialised by a lock beside a file storage (``sqlite:///...`` or
``journal:///...``, Optuna's journal file, meant for shared filesystems), so concurrent searches
never exceed ``n_trials``; an RDB server URL has no such lock and may exceed it by one trial per
extra process. The closing summary is ``optimization_results.yaml`` in the sweep directory.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

JOURNAL = "journal://"


def distribution(override: Override):
    """The Optuna distribution of a sweep override: ``choice`` -> categorical, ``range(start, stop,
    step)`` -> integers (or floats) from start up to but excluding stop, as Hydra's range;
    ``interval(low, high)`` -> uniform floats (integers if both ends are), ``tag(log, ...)``: log scale."""
    import optuna.distributions as d

    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return d.CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_range_sweep():
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            last = value.start + math.floor((value.stop - value.start) / value.step - 1e-9) * value.step
            return d.FloatDistribution(value.start, last, step=value.step)
        start, stop, step = int(value.start), int(value.stop), int(value.step)
        return d.IntDistribution(start, start + (stop - start - 1) // step * step, step=step)
    if override.is_interval_sweep():
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return d.IntDistribution(value.start, value.end, log=log_scale)
        return d.FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ValueError(f"{override.input_line}: Optuna searches choice(...), range(...) or interval(...)")


def storage_of(url: str | None):
    """The study storage for ``url``: ``journal:///path`` is Optuna's journal file (for a shared
    filesystem), anything else an RDB URL (``sqlite:///path.db``, ``postgresql://...``), None: memory."""
    if url is None or not url.startswith(JOURNAL):
        return url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = url[len(JOURNAL):]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))


def ask_lock(url: str | None):
    """A lock that serialises counting and asking across processes, beside a file storage (None for an
    RDB server or memory)."""
    from optuna.storages.journal import JournalFileOpenLock

    for prefix in (JOURNAL, "sqlite:///"):
        if url is not None and url.startswith(prefix):
            return JournalFileOpenLock(url[len(prefix):] + ".ask")
    return None


class OptunaSweeper(Sweeper):
    """Hydra's ``hydra/sweeper=visionlab_optuna`` (the ``hparams_search`` configs use it)."""

    def __init__(self, sampler: Any = None, direction: str = "minimize", storage: str | None = None,
                 study_name: str | None = None, n_trials: int = 20, n_jobs: int = 1,
                 max_failure_rate: float = 0.0, params: dict[str, str] | None = None) -> None:
        self.sampler_config, self.direction, self.storage = sampler, direction, storage
        self.study_name, self.n_trials, self.n_jobs = study_name, n_trials, n_jobs
        self.max_failure_rate, self.params = max_failure_rate, dict(params or {})
        self.config: DictConfig | None = None
        self.launcher = None
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep the config; instantiate the launcher that runs each batch of trials."""
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def search_space(self, arguments: Sequence[str]) -> tuple[dict, list[str]]:
        """The distributions to search (``params`` and sweeps on the command line) and the fixed
        overrides (every other command-line override; one of the same key drops it from the search)."""
        parser = OverridesParser.create()
        configured = parser.parse_overrides([f"{key}={value}" for key, value in self.params.items()])
        given = parser.parse_overrides(list(arguments))
        fixed = [o for o in given if not o.is_sweep_override()]
        fixed_keys = {o.get_key_element() for o in fixed}
        space = {o.get_key_element(): distribution(o) for o in [*configured, *given]
                 if o.is_sweep_override() and o.get_key_element() not in fixed_keys}
        return space, [o.input_line for o in fixed]

    def sweep(self, arguments: list[str]) -> None:
        """Ask, launch and tell until the study holds ``n_trials`` trials; write the summary."""
        import optuna
        from hydra.utils import instantiate

        space, fixed = self.search_space(arguments)
        sampler = self.sampler_config  # Hydra builds it with the sweeper; a plain mapping is built here
        if isinstance(sampler, (dict, DictConfig)):
            sampler = instantiate(sampler)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # our lines say what each trial was
        study = optuna.create_study(study_name=self.study_name, storage=storage_of(self.storage),
                                    sampler=sampler, direction=self.direction, load_if_exists=True)
        lock = ask_lock(self.storage)
        log.info("Optuna %s: study %r in %s, %s, %d trials in all (%d already), searching %s",
                 optuna.__version__, study.study_name, self.storage, type(study.sampler).__name__,
                 self.n_trials, len(study.trials), ", ".join(space) or "nothing")
        while trials := self.ask(study, space, lock):
            batch = [[*fixed, *(f"{key}={value}" for key, value in trial.params.items())] for trial in trials]
            returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            failed = sum(not self.tell(study, trial, result) for trial, result in zip(trials, returns,
                                                                                       strict=True))
            if failed / len(trials) > self.max_failure_rate:
                raise RuntimeError(f"{failed} of {len(trials)} trials failed, above hydra.sweeper."
                                   f"max_failure_rate={self.max_failure_rate}: the search stops")
        self.summarize(study)

    def ask(self, study, space: dict, lock) -> list:
        """Up to ``n_jobs`` new trials, as many as the study still lacks of ``n_trials``."""
        if lock is not None:
            lock.acquire()
        try:
            missing = self.n_trials - len(study.get_trials(deepcopy=False))
            return [study.ask(fixed_distributions=space) for _ in range(max(0, min(self.n_jobs, missing)))]
        finally:
            if lock is not None:
                lock.release()

    @staticmethod
    def tell(study, trial, result) -> bool:
        """Record a trial's value (COMPLETE), or FAIL for a job that raised or returned no finite
        number; whether it completed."""
        import optuna

        try:
            value = float(result.return_value)
        except Exception as err:  # the job raised: Hydra re-raises it here
            log.warning("trial %d failed: %s", trial.number, str(err).splitlines()[0] if str(err) else err)
            value = math.nan
        if not math.isfinite(value):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return False
        study.tell(trial, value)
        return True

    def summarize(self, study) -> None:
        """``optimization_results.yaml`` in the sweep directory, and the best trial in the log."""
        import optuna

        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        results: dict[str, Any] = {"name": "optuna", "study_name": study.study_name, "storage": self.storage,
                                   "n_trials": len(study.trials), "n_complete": len(complete)}
        if complete:
            best = study.best_trial
            results |= {"best_params": best.params, "best_value": best.value, "best_trial": best.number}
            log.info("Best parameters: %s", best.params)
            log.info("Best value: %s (trial %d of %d)", best.value, best.number, len(study.trials))
        else:
            log.warning("no trial completed: no best parameters")
        out = Path(self.config.hydra.sweep.dir)
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), out / "optimization_results.yaml")
