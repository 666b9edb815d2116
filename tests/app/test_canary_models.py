"""The bad canary candidates (model/canary_models.py) in the real app, and the traffic that meets
them (src/aiship/local/traffic.py): each candidate gets ready, then fails only the way it should."""

from __future__ import annotations

import base64
import ssl
import statistics
import sys
import time
from pathlib import Path

import canary_models  # model/canary_models.py, on the path as tests/conftest.py puts it
import numpy as np
import pytest
import yaml

from aiship.app import create_app
from aiship.app.card import read_card, verify_model_dir
from aiship.app.settings import Settings
from aiship.local.traffic import Traffic, digits_rows, infer_request, service_traffic
from aiship.support.errors import ConfigError

ZEROS = [0.0] * 64
WRITERS = {
    "skewed": canary_models.write_skewed,
    "failing": canary_models.write_failing,
    "slow": canary_models.write_slow,
}


@pytest.fixture(scope="module")
def candidates(trained_model_dir, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("canary-models")
    for name, write in WRITERS.items():
        write(folder / name, trained_model_dir)
    return {name: folder / name for name in WRITERS}


@pytest.fixture(scope="module")
def rows() -> list[list[float]]:
    return digits_rows()


def client_for(model_dir: Path):
    return create_app(Settings(model_dir=model_dir, revision="test-revision")).test_client()


def infer(client, rows: list[list[float]]):
    return client.post("/v2/models/digits/infer", json=infer_request(rows))


def labels(client, rows: list[list[float]]) -> np.ndarray:
    found = []
    for start in range(0, len(rows), 150):  # below the app's default batch limit
        response = infer(client, rows[start : start + 150])
        assert response.status_code == 200, response.get_json()
        outputs = {o["name"]: o["data"] for o in response.get_json()["outputs"]}
        found += outputs["label"]
    return np.array(found)


@pytest.mark.parametrize("name", list(WRITERS))
def test_each_candidate_gets_ready_as_the_good_model(name, candidates, trained_model_dir):
    card, good = verify_model_dir(candidates[name]), read_card(trained_model_dir)
    assert (card.inputs, card.outputs, card.labels) == (good.inputs, good.outputs, good.labels)
    assert card.version != good.version and card.sha256 != good.sha256
    client = client_for(candidates[name])
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    assert client.get("/version").get_json()["model"]["sha256"] == card.sha256
    assert infer(client, [ZEROS]).status_code == 200  # what a readiness check could send


def test_failing_answers_500_to_real_digits(candidates, rows):
    client = client_for(candidates["failing"])
    for batch in (rows[:1], rows[100:104]):
        response = infer(client, batch)
        assert response.status_code == 500
        assert response.get_json() == {"error": "internal error: see the server log"}
    assert infer(client, [ZEROS, ZEROS]).status_code == 200


def test_skewed_disagrees_with_the_good_model_and_favours_one_class(
    candidates, trained_model_dir, rows
):
    skewed = labels(client_for(candidates["skewed"]), rows)
    good = labels(client_for(trained_model_dir), rows)
    favoured = int(canary_models.SKEWED_CLASS)
    print(f"skewed mix {np.bincount(skewed, minlength=10)}, good {np.bincount(good, minlength=10)}")
    assert np.mean(skewed != good) > 0.8
    assert np.mean(skewed == favoured) > 0.35 and np.mean(good == favoured) < 0.15


def test_slow_answers_as_the_good_model_does(candidates, trained_model_dir, rows):
    slow_client, good_client = client_for(candidates["slow"]), client_for(trained_model_dir)
    slow, good = infer(slow_client, rows[:100]), infer(good_client, rows[:100])
    assert slow.status_code == good.status_code == 200
    assert slow.get_json()["outputs"] == good.get_json()["outputs"]  # labels and probabilities
    assert np.array_equal(labels(slow_client, rows), labels(good_client, rows))
    for name, client in (("good", good_client), ("slow", slow_client)):
        print(f"{name}: median {median_ms(client, rows[:20]):.1f} ms a request")


def median_ms(client, rows: list[list[float]]) -> float:
    times = []
    for row in rows:
        started = time.perf_counter()
        infer(client, [row])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


# The traffic generator


def test_traffic_counts_the_500s_of_the_failing_model(candidates, rows, serve_model, tmp_path):
    with serve_model(candidates["failing"], tmp_path / "server.log") as server:
        url = f"{server.url}/v2/models/digits/infer"
        with Traffic(url, rows=rows, batch_size=4, max_requests=5, pause=0) as digits:
            digits.wait(timeout=60)
        with Traffic(url, rows=[ZEROS], max_requests=3, pause=0) as zeros:
            zeros.wait(timeout=60)
    assert digits.ok == 0 and len(digits.failures) == 5
    assert all(f.startswith("500 ") for f in digits.failures)
    assert zeros.ok == 3 and zeros.failures == []


def test_traffic_sends_batches_of_the_rows_in_turn():
    rows = [[float(i)] * 64 for i in range(5)]
    bodies = Traffic("http://127.0.0.1:1/", rows=rows, batch_size=2).bodies()
    firsts = []
    for _ in range(3):
        (tensor,) = next(bodies)["inputs"]
        assert tensor["shape"] == [2, 64] and len(tensor["data"]) == 128
        firsts.append([tensor["data"][0], tensor["data"][64]])
    assert firsts == [[0.0, 1.0], [2.0, 3.0], [4.0, 0.0]]


@pytest.mark.parametrize(("rows", "batch_size"), [([], 1), ([[1.0], [1.0, 2.0]], 1), ([ZEROS], 0)])
def test_traffic_refuses_what_it_cannot_send(rows, batch_size):
    with pytest.raises(ConfigError):
        Traffic("http://127.0.0.1:1/", rows=rows, batch_size=batch_size)


def test_digits_rows_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # what a missing package does
    with pytest.raises(ConfigError, match=r"\[train\]"):
        digits_rows()


# The API server's service proxy, stood in for by an HTTPS server that wants a client certificate


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    import trustme
    from pytest_httpserver import HTTPServer

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    try:
        yield server, ca
    finally:
        server.clear()
        server.stop()


PROXIED = "/api/v1/namespaces/team/services/aiship:http/proxy/v2/models/digits/infer"


def kubeconfig(folder: Path, server: str, ca, inline: bool) -> Path:
    """A kubeconfig like local cluster up's (file paths) or AKS's (inline data), whose current
    context is not its first."""
    client = ca.issue_cert("aiship-test-user")
    cluster = {"server": server, **credential(folder, "certificate-authority", ca.cert_pem, inline)}
    user = {
        **credential(folder, "client-certificate", client.cert_chain_pems[0], inline),
        **credential(folder, "client-key", client.private_key_pem, inline),
    }
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "here",
        "contexts": [
            {"name": "elsewhere", "context": {"cluster": "other", "user": "other"}},
            {"name": "here", "context": {"cluster": "local", "user": "admin"}},
        ],
        "clusters": [
            {"name": "other", "cluster": {"server": "https://127.0.0.1:1"}},
            {"name": "local", "cluster": cluster},
        ],
        "users": [{"name": "other", "user": {}}, {"name": "admin", "user": user}],
    }
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def credential(folder: Path, key: str, pem, inline: bool) -> dict[str, str]:
    if inline:
        return {f"{key}-data": base64.b64encode(pem.bytes()).decode()}
    pem.write_to_path(str(folder / f"{key}.pem"))
    # the client's files relative to the kubeconfig's folder (kubectl reads them so), the CA not
    return {key: f"{key}.pem" if key.startswith("client-") else str(folder / f"{key}.pem")}


@pytest.mark.parametrize("inline", [False, True], ids=["files", "inline-data"])
def test_service_traffic_goes_through_the_proxy_with_the_kubeconfigs_certificate(
    proxy, inline, tmp_path
):
    server, ca = proxy
    server.clear()
    server.expect_request(PROXIED, method="POST").respond_with_json({"outputs": []})
    path = kubeconfig(tmp_path, server.url_for("").rstrip("/"), ca, inline)
    with service_traffic(path, "team", "aiship", "digits", max_requests=3, pause=0) as traffic:
        traffic.wait(timeout=60)
        scratch = Path(traffic.scratch.name) if traffic.scratch else None
    assert (traffic.ok, traffic.failures) == (3, [])
    assert [request.json["inputs"][0]["shape"] for request, _ in server.log] == [[1, 64]] * 3
    assert (scratch is not None) == inline and not (scratch and scratch.exists())

    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    anonymous = Traffic(traffic.url, verify=str(tmp_path / "ca.pem"), max_requests=1, pause=0)
    with anonymous:
        anonymous.wait(timeout=60)
    assert anonymous.ok == 0 and len(anonymous.failures) == 1  # the proxy wants the certificate


def test_service_traffic_without_a_client_certificate_says_so(tmp_path):
    config = {
        "current-context": "here",
        "contexts": [{"name": "here", "context": {"cluster": "local", "user": "token"}}],
        "clusters": [{"name": "local", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "token", "user": {"token": "not-a-certificate"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="no client certificate"):
        service_traffic(path, "team", "aiship", "digits")
    with pytest.raises(ConfigError, match="cannot read kubeconfig"):
        service_traffic(tmp_path / "absent", "team", "aiship", "digits")
