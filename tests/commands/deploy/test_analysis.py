"""The canary analysis: real /metrics read back, the judging rules, the declared file."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

import pytest
import requests
import yaml
from sklearn.datasets import load_digits

from aiship.app import create_app
from aiship.app.settings import Settings
from aiship.commands.deploy.analysis import (
    Analysis,
    CanaryStep,
    PodMetrics,
    judge,
    load_analysis,
    p99,
    psi,
)
from aiship.support.errors import ConfigError, StepError
from tests.repo import MANIFESTS

SHIPPED = MANIFESTS / "analysis.yaml"
DIGITS = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def images():
    return load_digits(return_X_y=True)[0]


# Reading real expositions


def test_parse_reads_the_app_s_own_exposition(trained_model_dir, images, monkeypatch):
    app = create_app(Settings(model_dir=trained_model_dir, revision="test-revision"))
    client = app.test_client()
    answered: Counter = Counter()
    for start in (0, 5, 10):
        body = client.post("/predict", json={"instances": images[start : start + 5].tolist()})
        answered.update(str(p) for p in body.get_json()["predictions"])
    tensor = {"name": "input", "datatype": "FP32", "shape": [4, 64]}
    for path in ("/v2/models/digits/infer", "/v2/models/digits/versions/1.0.0/infer"):
        body = client.post(
            path, json={"inputs": [{**tensor, "data": images[20:24].ravel().tolist()}]}
        )
        answered.update(str(p) for p in body.get_json()["outputs"][0]["data"])
    assert client.post("/predict", json={"instances": [[1.0] * 3]}).status_code == 400
    for _ in range(3):  # not a prediction route: not counted
        client.get("/version")

    def broken(*args, **kwargs):
        raise RuntimeError("the model broke")

    monkeypatch.setattr(app.extensions["dataplane"].model, "predict", broken)
    assert client.post("/predict", json={"instances": images[:1].tolist()}).status_code == 500

    pod = PodMetrics.parse(client.get("/metrics").get_data(as_text=True))
    assert (pod.requests, pod.errors, pod.refused) == (7, 1, 1)
    assert pod.latency[-1] == (math.inf, 7.0)
    assert [n for _, n in pod.latency] == sorted(n for _, n in pod.latency)
    assert len(pod.latency) == 13  # the app's 12 bounds and +Inf
    assert pod.predictions == {**dict.fromkeys(DIGITS, 0.0), "other": 0.0, **answered}
    assert pod.samples == 23
    assert 0 < p99(pod.latency) <= 2.5


def test_parse_reads_the_workers_summed(trained_model_dir, images, serve_model, tmp_path):
    """The multiprocess exposition (two workers' files summed) reads the same way."""
    with serve_model(trained_model_dir, tmp_path / "server.log") as server:
        before = PodMetrics.parse(requests.get(server.url + "/metrics", timeout=5).text)
        answered: Counter = Counter()
        for start in range(0, 60, 3):  # a new connection each time, so both workers take some
            body = {"instances": images[start : start + 3].tolist()}
            answer = requests.post(server.url + "/predict", json=body, timeout=5).json()
            answered.update(str(p) for p in answer["predictions"])
        requests.get(server.url + "/v2/models/digits/infer", timeout=5)  # 405: another route
        after = PodMetrics.parse(requests.get(server.url + "/metrics", timeout=5).text)
    grown = after.since(before)
    assert (grown.requests, grown.errors, grown.samples) == (20, 0, 60)
    assert grown.latency[-1] == (math.inf, 20.0)
    assert {c: n for c, n in grown.predictions.items() if n} == answered


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("this is not prometheus\n", "not the service's Prometheus text"),
        (
            'http_request_duration_seconds_count{method="POST",route="/predict",status="x"} 1\n',
            "not the service's Prometheus text",
        ),
        (
            'http_request_duration_seconds_bucket{route="/predict",status="200",le="0.1"} 1\n',
            'without le="+Inf"',
        ),
    ],
)
def test_unreadable_metrics_are_a_step_error(text, words):
    with pytest.raises(StepError, match="/metrics") as caught:
        PodMetrics.parse(text)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_a_pod_with_nothing_served_yet_is_empty():
    assert PodMetrics.parse("") == PodMetrics.empty()


# Counters over time and over pods


def pod(
    requests: int, errors: int = 0, fast: float | None = None, refused: int = 0, **classes: float
):
    """A pod's counters: FAST of the requests under 10 ms (all by default), the rest under
    100 ms; REFUSED of them answered 4xx."""
    fast = requests if fast is None else fast
    latency = ((0.01, fast), (0.1, float(requests)), (math.inf, float(requests)))
    return PodMetrics(requests, errors, latency, classes, refused)


def test_since_is_the_increase():
    before = pod(10, 1, 8, a=5, b=5)
    now = pod(30, 2, 20, a=15, b=10, c=1)
    assert now.since(before) == pod(20, 1, 12, a=10, b=5, c=1)
    assert now.since(None) == now


def test_since_a_restart_counts_from_zero():
    before = pod(100, 3, 90, a=60, b=40)
    restarted = pod(7, 0, 7, a=4, b=30)  # requests went down; b did not, and yet it reset too
    assert restarted.since(before) == restarted
    assert pod(200, 3, 190, a=50, b=150).since(before) == pod(200, 3, 190, a=50, b=150)


def test_pods_add_up():
    total = sum([pod(10, 1, 5, a=3), pod(20, 0, 20, a=1, b=2)], PodMetrics.empty())
    assert total == pod(30, 1, 25, a=4, b=2)


def test_pods_with_other_bounds_add_up_under_each_bound():
    coarse = PodMetrics(4, 0, ((0.1, 4.0), (math.inf, 4.0)), {})
    fine = PodMetrics(2, 0, ((0.05, 1.0), (0.1, 2.0), (math.inf, 2.0)), {})
    assert (coarse + fine).latency == ((0.05, 1.0), (0.1, 6.0), (math.inf, 6.0))


# The estimates


@pytest.mark.parametrize(
    ("buckets", "expected"),
    [
        # rank 198 of 200 falls in (0.1, 0.5], which holds 4: 0.1 + 0.4 * (198 - 196) / 4
        (((0.01, 100), (0.05, 180), (0.1, 196), (0.5, 200), (math.inf, 200)), 0.3),
        # in the lowest bucket, from 0: 0.01 * 99 / 100
        (((0.01, 100), (0.1, 100), (math.inf, 100)), 0.0099),
        # in the +Inf bucket: the highest finite bound
        (((0.1, 50), (0.5, 97), (math.inf, 100)), 0.5),
        # a dip is flattened, as Prometheus does: rank 9.9 of 10 in (0.05, 0.1], which holds 1
        (((0.01, 4), (0.05, 9), (0.07, 8), (0.1, 10), (math.inf, 10)), 0.07 + 0.03 * 0.9),
    ],
)
def test_p99_interpolates_as_histogram_quantile(buckets, expected):
    assert p99(buckets) == pytest.approx(expected)


@pytest.mark.parametrize(
    "buckets", [(), ((0.1, 0), (math.inf, 0)), ((math.inf, 5),), ((0.1, 3), (0.5, 5))]
)
def test_p99_of_no_observations_or_no_inf_bucket_is_none(buckets):
    assert p99(buckets) is None


def test_psi_is_zero_for_the_same_mix_and_large_for_a_shuffled_one():
    stable = {"0": 700, "1": 200, "2": 100}
    assert psi(stable, stable) == 0
    assert psi({k: 2 * v for k, v in stable.items()}, stable) == pytest.approx(0, abs=1e-3)
    shuffled = {"0": 100, "1": 200, "2": 700}
    assert psi(shuffled, stable) > 2
    assert psi(shuffled, stable) == pytest.approx(psi(stable, shuffled))


def test_psi_of_a_class_one_side_never_predicted_is_finite():
    index = psi({"0": 500, "1": 500}, {"0": 500, "1": 500, "other": 0})
    assert index == pytest.approx(0, abs=1e-3)
    collapsed = psi({"0": 1000}, {"0": 500, "1": 500})
    assert 2 < collapsed < math.inf


# The verdicts

ANALYSIS = Analysis(
    steps=(CanaryStep(25, 60), CanaryStep(50, 60)),
    interval=5,
    timeout=600,
    min_requests=50,
    min_samples=500,
    max_error_increase=0.01,
    max_p99_ratio=1.5,
    p99_slack_seconds=0.01,
    max_psi=0.1,
)
MIX = {"0": 300, "1": 300, "2": 400}
STABLE = pod(1000, 5, 995, **MIX)


def verdicts(canary: PodMetrics, stable: PodMetrics = STABLE) -> dict[str, bool | None]:
    return {check.name: check.passed for check in judge(ANALYSIS, canary, stable)}


def test_a_canary_like_stable_passes_every_check():
    checks = judge(ANALYSIS, pod(400, 2, 396, **{k: v * 0.6 for k, v in MIX.items()}), STABLE)
    assert [c.passed for c in checks] == [True, True, True, True]
    assert [c.line() for c in checks] == [
        "error rate 0.005 vs 0.005 (max +0.010) ok",
        "4xx rate 0.000 vs 0.000 (max +0.050) ok",
        "p99 latency (s) 0.010 vs 0.010 (max 0.020) ok",
        "prediction mix (PSI) 0.000 (max 0.100) ok",
    ]


@pytest.mark.parametrize(
    ("canary", "failing"),
    [
        (pod(1000, 16, 995, **MIX), "error rate"),  # 1.6 % against 0.5 %
        (pod(1000, 5, 995, 1000, **MIX), "4xx rate"),  # 400 to everything
        (pod(1000, 5, 900, **MIX), "p99 latency (s)"),  # a tenth over 10 ms
        (pod(1000, 5, 995, **{"0": 150, "1": 450, "2": 400}), "prediction mix (PSI)"),
    ],
)
def test_each_check_fails_alone(canary, failing):
    assert verdicts(canary) == {
        "error rate": failing != "error rate",
        "4xx rate": failing != "4xx rate",
        "p99 latency (s)": failing != "p99 latency (s)",
        "prediction mix (PSI)": failing != "prediction mix (PSI)",
    }
    (check,) = [c for c in judge(ANALYSIS, canary, STABLE) if c.name == failing]
    assert check.line().endswith(" FAILED")


def tail(requests: int, slow: int) -> PodMetrics:
    """SLOW of REQUESTS past the last bound (2.5 s), the rest under 10 ms."""
    latency = ((0.01, requests - slow), (2.5, requests - slow), (math.inf, requests))
    return PodMetrics(requests, 0, latency, MIX)


def test_a_tail_past_the_last_bound_is_judged_by_its_share_not_by_that_bound():
    # 10 % of the canary's requests at 29 s against stable's 2 % at 5 s: both p99s read 2.5 s
    # (histogram_quantile's answer), which would pass; the share out there does not.
    assert p99(tail(1000, 100).latency) == p99(tail(1000, 20).latency) == 2.5
    (check,) = [c for c in judge(ANALYSIS, tail(1000, 100), tail(1000, 20)) if "p99" in c.name]
    assert check.passed is False
    assert (
        check.line() == "p99 latency (s) tail 0.100 vs 0.020 (share over 2.5 s, max 0.030) FAILED"
    )
    same = [c for c in judge(ANALYSIS, tail(1000, 21), tail(1000, 20)) if "p99" in c.name]
    assert same[0].passed is True
    # Stable fast, the canary's tail out past the buckets: failed.
    alone = [c for c in judge(ANALYSIS, tail(1000, 100), STABLE) if "p99" in c.name]
    assert alone[0].passed is False


def test_latency_slack_spares_a_fast_service():
    """Stable's p99 of 1 ms: 2 ms is twice as slow, yet inside the 10 ms slack."""
    fast = PodMetrics(100, 0, ((0.001, 100), (0.002, 100), (math.inf, 100)), MIX)
    slower = PodMetrics(100, 0, ((0.001, 0), (0.002, 100), (math.inf, 100)), MIX)
    assert verdicts(slower, fast)["p99 latency (s)"] is True


def test_too_few_samples_are_not_judged_yet():
    checks = judge(ANALYSIS, pod(49, 49, 0, **{"0": 499}), STABLE)
    assert [c.passed for c in checks] == [None, None, None, None]
    assert checks[0].line() == (
        "error rate: waiting for 50 requests per side (canary 49, stable 1000)"
    )
    assert checks[3].line() == (
        "prediction mix (PSI): waiting for 500 rows per side (canary 499, stable 1000)"
    )
    # Enough requests but too few rows: the request checks are judged, the mix is not.
    assert verdicts(pod(50, 0, 50, **{"0": 100})) == {
        "error rate": True,
        "4xx rate": True,
        "p99 latency (s)": True,
        "prediction mix (PSI)": None,
    }


def test_no_classes_on_stable_is_not_compared():
    """A regression model, or a stable image from before the counter: nothing to compare."""
    for canary in (pod(1000, 5, 995, **MIX), pod(1000, 5, 995)):
        mix = judge(ANALYSIS, canary, pod(1000, 5, 995))[3]
        assert mix.passed is True
        assert mix.line() == "prediction mix (PSI): not compared: stable counts no classes"


def test_a_canary_that_stops_counting_classes_fails_the_mix_once_it_has_served():
    # It waits while the canary has too few requests to have counted any; then fails.
    assert verdicts(pod(49, 0, 49))["prediction mix (PSI)"] is None
    mix = judge(ANALYSIS, pod(1000, 5, 995), STABLE)[3]
    assert mix.passed is False
    assert mix.line() == "prediction mix (PSI): the canary counts no classes, stable does: FAILED"


# The declared file


def test_the_shipped_file_loads():
    analysis = load_analysis(SHIPPED)
    weights = [step.weight for step in analysis.steps]
    assert weights == sorted(set(weights)) and weights[0] > 0 and weights[-1] < 100
    assert analysis.interval < min(step.pause for step in analysis.steps)
    assert analysis.timeout >= sum(step.pause for step in analysis.steps)
    assert analysis.max_psi > 0 and analysis.min_samples >= 1 and analysis.max_p99_ratio >= 1


def _edited(tmp_path, edit) -> object:
    data = yaml.safe_load(SHIPPED.read_text())
    edit(data)
    path = tmp_path / "analysis.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_copy_of_the_shipped_file_reads_the_same(tmp_path):
    assert load_analysis(_edited(tmp_path, lambda data: None)) == load_analysis(SHIPPED)
    changed = load_analysis(
        _edited(tmp_path, lambda d: d["checks"]["predictions"].update(maxPsi=3))
    )
    assert changed == replace(load_analysis(SHIPPED), max_psi=3.0)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda d: d["steps"][0].update(weight=0), "steps[0].weight: 0 is less than the minimum"),
        (lambda d: d["steps"][1].update(weight=100), "steps[1].weight: 100 is greater"),
        (lambda d: d["steps"][0].update(weight=2.5), "steps[0].weight: 2.5 is not of type"),
        (
            lambda d: d["steps"].append({"weight": 40, "pause": 1}),
            "steps[2].weight 40 is not above",
        ),
        (lambda d: d["steps"][0].update(pause=-1), "steps[0].pause: -1 is less than or equal"),
        (lambda d: d["steps"][1].pop("pause"), "steps[1].pause is missing"),
        (lambda d: d["steps"][0].update(wait=3), "steps[0] has unknown fields ['wait']"),
        (lambda d: d.update(steps=[]), "steps: [] should be non-empty"),
        (lambda d: d.update(interval="5s"), "interval: '5s' is not of type 'number'"),
        (lambda d: d.update(timeout=0), "timeout: 0 is less than or equal"),
        (lambda d: d.update(timeout=1), "timeout 1 is under the steps' pauses together"),
        (lambda d: d.update(minRequests=True), "minRequests: True is not of type 'integer'"),
        (lambda d: d.pop("minSamples"), "minSamples is missing"),
        (lambda d: d.update(minsamples=5), "the top level has unknown fields ['minsamples']"),
        (lambda d: d["checks"]["errorRate"].update(maxIncrease=2), "checks.errorRate.maxIncrease"),
        (lambda d: d["checks"]["latencyP99"].update(maxRatio=0.5), "checks.latencyP99.maxRatio"),
        (lambda d: d["checks"]["latencyP99"].pop("slackSeconds"), "latencyP99.slackSeconds is"),
        (lambda d: d["checks"]["predictions"].update(maxPsi=0), "checks.predictions.maxPsi: 0"),
        (lambda d: d["checks"].pop("predictions"), "checks.predictions is missing"),
    ],
)
def test_each_bad_field_is_named(tmp_path, edit, words):
    path = _edited(tmp_path, edit)
    with pytest.raises(ConfigError) as caught:
        load_analysis(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and words in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "words"),
    [("steps: [\n", "cannot be read as YAML"), ("", "the file: None is not of type 'object'")],
)
def test_a_file_that_is_not_an_analysis_is_named(tmp_path, text, words):
    path = tmp_path / "analysis.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_analysis(path)
    assert str(caught.value).startswith(str(path))
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_analysis(tmp_path / "nothing.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'nothing.yaml'} not found: ")
