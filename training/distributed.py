"""The ``dask`` training backend: every LightGBM fit of a job runs on ``lightgbm.dask`` over a Dask cluster.

Chosen by configuration (``backend: dask``; ``dask_address`` names a running scheduler, none starts a
``LocalCluster`` for the job). The learners do not change: ``training.learners.fit_booster`` hands its
LightGBM parameters here while a backend is active, and gets back a plain ``lgb.Booster`` holding exactly the
best iteration's trees, so the ``PolicyModel`` is saved and served as before, with no Dask at serving time.

Early stopping. ``lightgbm.dask`` accepts ``eval_set``, but each worker scores only its own shard of the
validation rows and the returned ``evals_result_`` is the master worker's shard (measured: it equals the
metric on that half, not on the whole set), so stopping on it would follow a different, noisier curve than
the in-process path. Instead two callbacks run on every worker: before the first tree the *whole*
validation set is binned with the training set's bin mappers (the same on every worker: data-parallel
training syncs them) and added to the worker's booster, so LightGBM scores it incrementally with its own
metric for the objective (weighted ``binary_logloss`` or ``l2``), exactly as in process; after each tree the
rule of ``lgb.early_stopping`` is applied to that curve (the first strict best; stop ``early_stopping_rounds``
later without a gain, else keep the best at ``max_trees``). Every worker holds the same trees and rows and
runs the same code, so all stop at the same iteration and none is left waiting in an all-reduce. The master
worker's recorded curve comes back with the model (``DaskFitter.curves``).

Same quality, not the same bits: in data-parallel LightGBM each rank bins its share of the features from its
own rows and bags its own rows, and lightgbm.dask hands out ranks in the order the scheduler reports where
the data lives, which varies from run to run. Rows are shuffled (seeded) before they are cut into one block
per worker, so any rank's bins come from a random share; the measured differences to the in-process model
are those of a refit with another seed (``tests/integration/training/test_dask_training.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import numpy as np

from nextbest.errors import UnavailableError

if TYPE_CHECKING:
    import lightgbm as lgb
    from distributed import Client

    from nextbest.training.config import TrainConfig

Array = np.ndarray
Part = tuple[Array, Array, Array | None]
LOCAL_WORKERS = 2  # the LocalCluster started when no address is configured: 2 workers x 1 thread
CONNECT_TIMEOUT_S = 10.0
MIN_ROWS_PER_WORKER = 200  # fewer rows than this per worker and a fit uses fewer workers
# fit_booster speaks LightGBM's parameter names; the Dask estimators are scikit-learn ones, whose defaults
# (min_child_samples=20, subsample=1, ...) would otherwise sit beside the aliases and be resolved by precedence.
_SKLEARN_NAMES = {
    "min_data_in_leaf": "min_child_samples",
    "feature_fraction": "colsample_bytree",
    "bagging_fraction": "subsample",
    "bagging_freq": "subsample_freq",
    "lambda_l2": "reg_lambda",
    "seed": "random_state",
}
VALID_NAME = "full_valid"
_ACTIVE: ContextVar[DaskFitter | None] = ContextVar("nextbest_dask_fitter", default=None)


def active_fitter() -> DaskFitter | None:
    """The fitter of the enclosing ``training_backend`` block, if it is a Dask one."""
    return _ACTIVE.get()


class _AddFullValidation:
    """Before the first tree: the whole validation set, binned like the training rows, joins the booster."""

    def __init__(self, valid: Part) -> None:
        self.valid = valid
        self.order, self.before_iteration = 0, True  # on the instance: lgb.train overrides a class attribute

    def __call__(self, env: Any) -> None:
        import lightgbm as lgb

        if env.iteration == env.begin_iteration:
            X, y, weight = self.valid
            train = env.model.train_set
            data = lgb.Dataset(X, y, weight=weight, reference=train, params=train.get_params())
            env.model.add_valid(data, VALID_NAME)


class FullValidationStopping:
    """The rule of ``lgb.early_stopping``, on the whole validation set's curve; with ``extend`` > 1 it grows
    on to that multiple of the best count (``training.boosting._StopPastBest``'s rule, the in-process twin)."""

    def __init__(self, rounds: int, extend: float = 1.0) -> None:
        self.rounds, self.extend = rounds, extend
        self.order, self.before_iteration = 30, False  # after record_evaluation (20), like lgb.early_stopping
        self.curve: list[float] = []
        self.best_iter = -1

    def __call__(self, env: Any) -> None:
        import lightgbm as lgb

        it = env.iteration - env.begin_iteration
        results = env.evaluation_result_list or env.model.eval_valid()
        _, metric, value, _ = next(r for r in results if r[0] == VALID_NAME)
        self.curve.append(value)
        if self.best_iter < 0 or value < self.curve[self.best_iter]:
            self.best_iter = it
        past = max(self.rounds, int(np.ceil(self.extend * (self.best_iter + 1))) - (self.best_iter + 1))
        if it - self.best_iter >= past or env.iteration + 1 >= env.end_iteration:
            best = (VALID_NAME, metric, self.curve[self.best_iter], False)
            # Grown past the best, every tree is kept: LightGBM trims a finished model to the iteration the
            # exception names, so it names the last one; the caller finds the best on the recorded curve.
            raise lgb.callback.EarlyStopException(it if self.extend > 1.0 else self.best_iter, [best])


def stopping_callbacks(valid: Part, rounds: int, extend: float = 1.0) -> list[Any]:
    """Early stopping on the whole validation set, for a data-parallel (or an in-process) LightGBM fit."""
    return [_AddFullValidation(valid), FullValidationStopping(rounds, extend)]


class DaskFitter:
    """Fits LightGBM models on a Dask cluster with the rows split across its workers."""

    def __init__(self, client: Client, description: str) -> None:
        self.client = client
        self.description = description
        self.workers = sorted(client.scheduler_info()["workers"])
        self.curves: list[list[float]] = []  # the validation curve of every fit, up to where it stopped

    def spread(self, arrays: Sequence[Array | None], n_parts: int) -> list[Any]:
        """Dask arrays whose i-th block lives on the i-th worker (scattered there), so each worker trains on
        its block; ``lightgbm.dask`` builds one part per block and trains where the parts are."""
        import dask.array as da

        n = next(a for a in arrays if a is not None).shape[0]
        bounds = np.linspace(0, n, n_parts + 1).astype(int)
        out: list[Any] = []
        for arr in arrays:
            if arr is None:
                out.append(None)
                continue
            blocks = []
            for i in range(n_parts):
                block = np.ascontiguousarray(arr[bounds[i] : bounds[i + 1]])
                future = self.client.scatter(block, workers=[self.workers[i]], hash=False)
                blocks.append(da.from_delayed(future, shape=block.shape, dtype=block.dtype))
            out.append(da.concatenate(blocks))
        return out

    def estimator(self, lgb_params: dict[str, Any], max_trees: int) -> Any:
        """The Dask estimator for ``fit_booster``'s parameters (threads are each worker's own)."""
        import lightgbm as lgb

        params = {_SKLEARN_NAMES.get(k, k): v for k, v in lgb_params.items() if k != "num_threads"}
        cls = lgb.DaskLGBMClassifier if params["objective"] == "binary" else lgb.DaskLGBMRegressor
        return cls(client=self.client, n_estimators=max_trees, **params)

    def fit(
        self,
        lgb_params: dict[str, Any],
        train: Part,
        valid: Part | None,
        categorical: Sequence[int],
        max_trees: int,
        early_stopping_rounds: int,
        extend: float = 1.0,
    ) -> lgb.Booster:
        """The Dask twin of the in-process fit: same parameters, weights, categorical columns and stopping rule;
        the returned booster holds only the best iteration's trees (with ``extend`` > 1: every tree grown,
        ``best_iteration`` set). Without ``valid`` (a refit with the trees cross-fitting found) exactly
        ``max_trees`` trees."""
        import lightgbm as lgb

        n = train[0].shape[0]
        n_parts = max(1, min(len(self.workers), n // MIN_ROWS_PER_WORKER))
        order = np.random.default_rng(lgb_params.get("seed", 0)).permutation(n)  # each block a random share
        X, y, w = self.spread([None if a is None else a[order] for a in train], n_parts)
        model = self.estimator(lgb_params, max_trees)
        callbacks = [] if valid is None else stopping_callbacks(valid, early_stopping_rounds, extend)
        model.fit(X, y, sample_weight=w, categorical_feature=list(categorical), callbacks=callbacks)
        if valid is not None:
            self.curves.append(next(iter(model.evals_result_[VALID_NAME].values())))
        booster = model.booster_
        best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        if extend > 1.0 and valid is not None:  # every tree was kept; the best is the curve's first minimum
            grown = lgb.Booster(model_str=booster.model_to_string(num_iteration=-1))
            grown.best_iteration = int(np.argmin(self.curves[-1])) + 1
            return grown
        return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def _quiet_lightgbm_stdout() -> None:
    """LightGBM's network layer prints from the worker threads, where its log settings do not reach; the
    workers of our own LocalCluster have nothing else to say on stdout."""
    import os

    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)


def _lightgbm_logger() -> logging.Logger:
    """lightgbm.dask warns "Parameter n_jobs will be ignored" on every fit (the scikit-learn estimators always
    carry ``n_jobs``); threads are each worker's by design, so that one message is dropped."""
    log = logging.getLogger("nextbest.lightgbm")
    if not log.filters:
        log.addFilter(lambda record: "n_jobs will be ignored" not in record.getMessage())
    return log


@contextmanager
def _connect(address: str | None, say: Callable[[str], None]) -> Iterator[tuple[Client, str]]:
    from distributed import Client, LocalCluster

    if address is None:
        say(f"start a Dask LocalCluster ({LOCAL_WORKERS} workers x 1 thread)")
        with (
            LocalCluster(
                n_workers=LOCAL_WORKERS, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(_quiet_lightgbm_stdout)
            yield client, f"LocalCluster({LOCAL_WORKERS}x1)"
        return
    say(f"connect to the Dask scheduler at {address}")
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnavailableError(f"cannot reach the Dask scheduler at {address!r}: {reason}") from exc
    with client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError as exc:
            raise UnavailableError(f"the Dask scheduler at {address!r} has no workers") from exc
        yield client, address


@contextmanager
def training_backend(cfg: TrainConfig, say: Callable[[str], None] | None = None) -> Iterator[DaskFitter | None]:
    """The job's training backend, alive for the block: nothing for ``local``; for ``dask`` a client (and the
    LocalCluster it owns, when no address is configured), closed on the way out, error or not."""
    if cfg.backend == "local":
        yield None
        return
    import lightgbm as lgb

    with ExitStack() as stack:
        client, description = stack.enter_context(_connect(cfg.dask_address, say or (lambda _m: None)))
        fitter = DaskFitter(client, description)
        # lightgbm.dask reports port hunting through LightGBM's logger (print by default): route it to logging.
        previous = getattr(lgb.basic, "_LOGGER", None)
        lgb.register_logger(_lightgbm_logger())
        if previous is not None:
            stack.callback(lgb.register_logger, previous)
        token = _ACTIVE.set(fitter)
        stack.callback(_ACTIVE.reset, token)
        yield fitter
