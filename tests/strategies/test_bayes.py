"""The Optuna-backed ask/tell strategy, driven by hand (no cluster)."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from daskhpo import Categorical, Float, Int, InvalidSearchError, InvalidSearchTypeError
from daskhpo.store import result_from_json, result_to_json
from daskhpo.strategies import Job, Result, Status
from daskhpo.strategies.bayes import BayesStrategy, OptunaSpace

optuna = pytest.importorskip(
    "optuna", reason="optuna is in the test extra; this guards bare installs"
)
RUNNING = optuna.trial.TrialState.RUNNING
FAIL = optuna.trial.TrialState.FAIL
COMPLETE = optuna.trial.TrialState.COMPLETE


def _result(job: Job, score: float, failed: bool = False) -> Result:
    return Result(
        job,
        Status.FAILED if failed else Status.COMPLETE,
        math.nan if failed else score,
        {"score": (math.nan,) if failed else (score,)},
        None,
        (0.01,),
        (0.001,),
        ("ValueError: boom",) if failed else (None,),
    )


def _drive(strategy: BayesStrategy, objective, width: int) -> list[Job]:
    """Keep ``width`` trials in flight, tell them first-in first-out; return the jobs in ask order."""
    asked: list[Job] = []
    queue: deque[Job] = deque()
    while not strategy.done:
        new = strategy.ask(width)
        asked += new
        queue.extend(new)
        job = queue.popleft()
        strategy.tell(_result(job, objective(job.params)))
    return asked


# -- suggestions stay inside the space ------------------------------------------------------------

_values = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none(), st.booleans())
_dims = st.one_of(
    st.tuples(st.floats(-100, 100), st.floats(0.01, 100)).map(lambda t: Float(t[0], t[0] + t[1])),
    st.tuples(st.floats(1e-4, 10), st.floats(1.5, 1e4)).map(
        lambda t: Float(t[0], t[0] * t[1], log=True)
    ),
    st.tuples(st.integers(-50, 50), st.integers(0, 30)).map(lambda t: Int(t[0], t[0] + t[1])),
    st.tuples(st.integers(1, 20), st.integers(1, 500)).map(
        lambda t: Int(t[0], t[0] + t[1], log=True)
    ),
    st.lists(_values, min_size=1, max_size=4).map(Categorical),
    st.lists(_values, min_size=1, max_size=4),  # a scikit-learn style list of values
)


def _inside(value, dim) -> bool:
    if isinstance(dim, Float):
        return isinstance(value, float) and dim.low <= value <= dim.high
    if isinstance(dim, Int):
        return type(value) is int and dim.low <= value <= dim.high
    choices = dim.choices if isinstance(dim, Categorical) else dim
    return any(type(value) is type(c) and value == c for c in choices)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    space=st.dictionaries(st.sampled_from("abcde"), _dims, min_size=1, max_size=4),
    sampler=st.sampled_from(["tpe", "random", "cmaes", "nsga2"]),
    width=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_suggestions_stay_inside_the_space(space, sampler, width, seed):
    options = {"population_size": 4} if sampler == "nsga2" else {}
    strategy = BayesStrategy(
        space,
        12,
        sampler=sampler,
        sampler_options=options,
        random_state=seed,
        max_in_flight=width,
    )

    def objective(params):
        return float(sum(v for v in params.values() if type(v) in (int, float)) % 7)

    jobs = _drive(strategy, objective, width)
    assert [j.trial_id for j in jobs] == list(range(12))
    for job in jobs:
        assert set(job.params) == set(space)
        for key, value in job.params.items():
            assert _inside(value, space[key]), (key, value, space[key])


def test_scipy_distributions_map_to_optuna_ranges():
    space = OptunaSpace(
        {
            "C": stats.loguniform(1e-3, 1e2),
            "alpha": stats.uniform(2, 3),  # [2, 5]
            "depth": stats.randint(1, 6),  # 1..5
            "one": stats.randint(4, 5),  # always 4
        }
    )
    dists = space.distributions({"C": 1.0, "alpha": 3.0, "depth": 2})
    assert dists["C"] == optuna.distributions.FloatDistribution(1e-3, 1e2, log=True)
    assert dists["alpha"] == optuna.distributions.FloatDistribution(2.0, 5.0)
    assert dists["depth"] == optuna.distributions.IntDistribution(1, 5)
    strategy = BayesStrategy(space, 20, sampler="random", random_state=0, max_in_flight=20)
    jobs = strategy.ask(20)
    assert all(1e-3 <= j.params["C"] <= 1e2 and 2 <= j.params["alpha"] <= 5 for j in jobs)
    assert {j.params["depth"] for j in jobs} <= {1, 2, 3, 4, 5}
    assert {j.params["one"] for j in jobs} == {4}


@pytest.mark.parametrize(
    ("space", "error", "words"),
    [
        ({"C": stats.norm(0, 1)}, InvalidSearchError, ["search_space['C']", "norm", "Float"]),
        ({"C": stats.expon()}, InvalidSearchError, ["search_space['C']", "expon"]),
        ({"C": stats.loguniform(1, 10, loc=1)}, InvalidSearchError, ["search_space['C']", "loc"]),
        ({"C": 1.0}, InvalidSearchTypeError, ["search_space['C']", "[1.0]"]),
        ({"C": []}, InvalidSearchError, ["search_space['C'] is empty"]),
        ([{"C": [1]}, 3], InvalidSearchTypeError, ["search_space[1]", "dict"]),
        ([], InvalidSearchError, ["search_space=[] is empty"]),
        ({}, InvalidSearchError, ["no parameters"]),
        ("C", InvalidSearchTypeError, ["must be a dict"]),
    ],
)
def test_bad_spaces_name_the_parameter(space, error, words):
    with pytest.raises(error) as info:
        OptunaSpace(space)
    for word in words:
        assert word in str(info.value)


def test_bad_settings_are_refused():
    with pytest.raises(InvalidSearchError, match="n_trials=0"):
        BayesStrategy({"a": Int(1, 3)}, 0)
    with pytest.raises(InvalidSearchError, match="sampler='smac'"):
        BayesStrategy({"a": Int(1, 3)}, 5, sampler="smac")
    with pytest.raises(InvalidSearchError, match="sampler_options=.*TPESampler"):
        BayesStrategy({"a": Int(1, 3)}, 5, sampler_options={"n_startup": 3})
    with pytest.raises(InvalidSearchError, match="single objective"):
        BayesStrategy(
            {"a": Int(1, 3)},
            5,
            sampler="cmaes",
            objectives=[("score", "maximize"), ("fit_time", "minimize")],
        )


# -- conditional spaces ---------------------------------------------------------------------------


def test_conditional_parameters_only_set_when_their_branch_is_active():
    space = [
        {"kernel": ["rbf"], "C": Float(1e-2, 1e2, log=True), "gamma": Float(1e-4, 1, log=True)},
        {"kernel": ["poly"], "C": Float(1e-2, 1e2, log=True), "degree": Int(2, 5)},
        {"kernel": ["linear"], "C": Float(0.1, 10)},  # C over another range: its own Optuna name
    ]
    strategy = BayesStrategy(
        space, 40, random_state=3, sampler_options={"n_startup_trials": 8}, max_in_flight=3
    )

    def objective(p):
        return -abs(math.log10(p["C"])) + (p.get("degree", 0) == 3) + (p["kernel"] == "rbf")

    jobs = _drive(strategy, objective, 3)
    keys = {"rbf": {"kernel", "C", "gamma"}, "poly": {"kernel", "C", "degree"}}
    keys["linear"] = {"kernel", "C"}
    assert {j.params["kernel"] for j in jobs} == {"rbf", "poly", "linear"}
    for job in jobs:
        assert set(job.params) == keys[job.params["kernel"]]
        if job.params["kernel"] == "linear":
            assert 0.1 <= job.params["C"] <= 10
    # The sampler saw only the active branch's parameters in each trial, too.
    for trial in strategy.suggester.study.trials:
        branch = trial.params["branch"]
        names = {"branch", *trial.params} - {"branch"}
        assert names == [{"C", "gamma"}, {"C", "degree"}, {"C@2"}][branch]


def test_nested_choices():
    space = {
        "clf": Categorical(
            [
                {"clf": [LogisticRegression()], "clf__C": Float(1e-2, 10, log=True)},
                {
                    "clf": [RandomForestClassifier()],
                    "clf__max_depth": Int(2, 8),
                    "clf__criterion": Categorical(
                        [{"clf__criterion": ["gini"]}, {"clf__criterion": ["entropy"]}]
                    ),
                },
            ]
        ),
        "scale": [True, False],
    }
    strategy = BayesStrategy(space, 25, random_state=0, max_in_flight=5)
    jobs = _drive(strategy, lambda p: float(p.get("clf__max_depth", 0)), 5)
    seen = set()
    for job in jobs:
        p = job.params
        if isinstance(p["clf"], LogisticRegression):
            assert set(p) == {"clf", "clf__C", "scale"}
        else:
            assert isinstance(p["clf"], RandomForestClassifier)
            assert set(p) == {"clf", "clf__max_depth", "clf__criterion", "scale"}
            seen.add(p["clf__criterion"])
        assert (
            p["clf"] is space["clf"].choices[0]["clf"][0]
            or p["clf"] is (space["clf"].choices[1]["clf"][0])
        )
    assert seen == {"gini", "entropy"}
    # Every combination of branches is offered for the parameter-name check.
    examples = strategy.example_params()
    assert [sorted(e) for e in examples] == [
        ["clf", "clf__C", "scale"],
        ["clf", "clf__criterion", "clf__max_depth", "scale"],
        ["clf", "clf__criterion", "clf__max_depth", "scale"],
    ]


# -- in-flight trials and duplicates ----------------------------------------------------------------


def _toy(params) -> float:
    return -float((params["x"] - 5) ** 2 + (params["y"] - 2) ** 2)


def _count_duplicates(jobs: list[Job], width: int) -> tuple[int, int]:
    """Duplicates and duplicates of a running trial, counted from the asked jobs themselves."""
    seen: list[tuple] = []
    running: deque[tuple] = deque()
    dup = dup_running = 0
    for job in jobs:
        config = (job.params["x"], job.params["y"])
        if config in seen:
            dup += 1
            dup_running += config in running
        seen.append(config)
        running.append(config)
        if len(running) == width:  # _drive tells the oldest one before the next ask
            running.popleft()
    return dup, dup_running


@pytest.mark.parametrize("liar", [True, False])
def test_in_flight_trials_are_accounted_for(liar):
    width = 4
    strategy = BayesStrategy(
        {"x": Int(0, 7), "y": Int(0, 7)},
        40,
        random_state=0,
        max_in_flight=width,
        sampler_options={"constant_liar": liar, "n_startup_trials": 5},
    )
    first = strategy.ask(10)
    assert len(first) == width  # never more in flight than max_in_flight
    running = strategy.suggester.study.get_trials(states=(RUNNING,))
    assert [t.params for t in running] == [{"x": j.params["x"], "y": j.params["y"]} for j in first]
    for job in first:
        strategy.tell(_result(job, _toy(job.params)))
    jobs = first + _drive(strategy, _toy, width)
    dup, dup_running = _count_duplicates(jobs, width)
    stats_ = strategy.stats
    assert (stats_["duplicate_suggestions"], stats_["duplicates_of_running"]) == (dup, dup_running)
    if liar:
        # With the constant liar, parallel asks do not collapse onto a trial still running...
        assert dup_running <= 2
    else:
        # ...which they do without it, on this deterministic toy objective.
        assert dup_running >= 8


def test_failed_trials_are_told_as_failures():
    strategy = BayesStrategy({"x": Float(0, 1)}, 12, random_state=0, max_in_flight=2)
    jobs: list[Job] = []
    while not strategy.done:
        for job in strategy.ask(2):
            jobs.append(job)
            # Trials 1, 4, 7, ... fail; trial 2 "succeeds" with a non-finite score.
            if job.trial_id % 3 == 1:
                strategy.tell(_result(job, 0.0, failed=True))
            elif job.trial_id == 2:
                strategy.tell(_result(job, math.nan))
            else:
                strategy.tell(_result(job, job.params["x"]))
    states = [t.state for t in strategy.suggester.study.trials]
    expected = [FAIL if (i % 3 == 1 or i == 2) else COMPLETE for i in range(12)]
    assert states == expected
    assert strategy.stats["trials_failed"] == 5
    best = strategy.suggester.study.best_trial
    assert best.state is COMPLETE and best.value == max(
        j.params["x"] for j in jobs if j.trial_id % 3 != 1 and j.trial_id != 2
    )


# -- seeds, replays ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "nsga2"])
def test_same_seed_same_suggestions(sampler):
    def run(seed):
        options = {"population_size": 4} if sampler == "nsga2" else {}
        strategy = BayesStrategy(
            {"x": Float(-3, 3), "n": Int(1, 50, log=True), "c": ["a", "b", "c"]},
            16,
            sampler=sampler,
            sampler_options=options,
            random_state=seed,
            max_in_flight=3,
        )
        return [
            j.params
            for j in _drive(strategy, lambda p: -(p["x"] ** 2) + (p["c"] == "b") - p["n"] / 50, 3)
        ]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_gp_sampler_suggests_inside_the_space_and_reproduces():
    pytest.importorskip(
        "torch", reason="Optuna's GPSampler needs PyTorch, a ~3 GB optional dependency"
    )

    def run():
        strategy = BayesStrategy(
            {"x": Float(-3, 3), "k": Int(0, 4)},
            7,
            sampler="gp",
            sampler_options={"n_startup_trials": 3},
            random_state=1,
            max_in_flight=2,
        )
        return _drive(strategy, lambda p: -((p["x"] - 1) ** 2) - p["k"], 2), strategy

    jobs, strategy = run()
    assert all(-3 <= j.params["x"] <= 3 and j.params["k"] in range(5) for j in jobs)
    assert strategy.stats["sampler"] == "GPSampler"
    assert [j.params for j in jobs] == [j.params for j in run()[0]]


def test_replaying_stored_trials_continues_like_an_uninterrupted_run():
    space = {
        "C": Float(1e-3, 1e3, log=True),
        "model": Categorical([LogisticRegression(), RandomForestClassifier()]),
        "k": Int(1, 9),
    }

    def objective(p):
        return (
            -abs(math.log10(p["C"])) - abs(p["k"] - 4) + isinstance(p["model"], LogisticRegression)
        )

    def strategy():
        return BayesStrategy(space, 14, random_state=5, sampler_options={"n_startup_trials": 4})

    full = _drive(strategy(), objective, 1)
    # Store the first 8 results as JSON (the estimators become stand-ins), then replay them.
    stored = [result_to_json(_result(j, objective(j.params))) for j in full[:8]]
    resumed = strategy()
    for record in stored:
        result = result_from_json(record, resumed.restore(record["trial_id"], record["params"]))
        assert (
            result.job.params["model"]
            is space["model"].choices[
                0 if isinstance(result.job.params["model"], LogisticRegression) else 1
            ]
        )
        resumed.tell(result)
    rest = _drive(resumed, objective, 1)
    assert [j.trial_id for j in rest] == list(range(8, 14))
    assert [j.params for j in rest] == [j.params for j in full[8:]]
    assert resumed.stats["suggestions"] == 6


def test_replayed_failures_stay_failures_and_ids_continue():
    strategy = BayesStrategy({"x": Float(0, 1)}, 4, random_state=0)
    strategy.tell(_result(Job(0, {"x": 0.5}), 0.0, failed=True))
    strategy.tell(_result(Job(2, {"x": 0.25}), 0.3))  # trial 1 was lost in flight
    assert [t.state for t in strategy.suggester.study.trials] == [FAIL, COMPLETE]
    assert strategy.stats["trials_failed"] == 1
    jobs = strategy.ask(5)
    assert [j.trial_id for j in jobs] == [3]  # one in flight at a time, ids after the stored ones
    strategy.tell(_result(jobs[0], 0.1))
    assert [j.trial_id for j in strategy.ask(5)] == [4]
    assert not strategy.done


def test_restore_refuses_a_configuration_outside_the_space():
    strategy = BayesStrategy({"x": Float(0, 1)}, 3)
    with pytest.raises(InvalidSearchError, match="not in search_space"):
        strategy.restore(0, {"x": 2.0})
    with pytest.raises(InvalidSearchError, match="not in search_space"):
        strategy.restore(0, {"y": 0.5})


def test_restore_maps_trials_of_the_search_only_and_keeps_the_one_argument_form():
    model = LogisticRegression()
    strategy = BayesStrategy({"model": Categorical([model, None])}, 3)
    stand_in = {"model": {"__repr__": "LogisticRegression()"}}
    assert strategy.restore(2, stand_in)["model"] is model
    assert strategy.restore(3, stand_in) is None and strategy.restore(-1, stand_in) is None
    # The older form restore(params), kept while the facades still call it.
    assert strategy.restore(stand_in) == strategy.restore(0, stand_in)


def test_set_slots_sizes_the_batch_unless_max_in_flight_was_given():
    fitted = BayesStrategy({"x": Float(0, 1)}, 10, random_state=0)
    assert len(fitted.ask(10)) == 1  # one at a time until the cluster is known
    fitted.set_slots(4)
    assert len(fitted.ask(10)) == 3 and fitted.stats["max_trials_in_flight"] == 4
    explicit = BayesStrategy({"x": Float(0, 1)}, 10, random_state=0, max_in_flight=2)
    explicit.set_slots(8)
    assert len(explicit.ask(10)) == 2


def test_objectives_from_scores_and_timings():
    strategy = BayesStrategy(
        {"x": Float(0, 1)},
        3,
        objectives=[("acc", "maximize"), ("fit_time", "minimize")],
        sampler="nsga2",
    )
    job = strategy.ask(1)[0]
    result = Result(
        job, Status.COMPLETE, 0.8, {"acc": (0.7, 0.9), "f1": (0.1, 0.2)}, None, (1.0, 3.0), (0, 0)
    )
    assert strategy.objective_values(result) == [pytest.approx(0.8), 2.0]
    strategy.tell(result)
    assert strategy.suggester.study.trials[0].values == [pytest.approx(0.8), 2.0]
    bad = BayesStrategy({"x": Float(0, 1)}, 3, objectives=[("recall", "maximize")])
    with pytest.raises(InvalidSearchError, match="'recall'.*'acc'"):
        bad.objective_values(result)
    assert np.isfinite(strategy.objective_values(result)).all()
