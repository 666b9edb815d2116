"""aks-credentials: the real azure-mgmt-containerservice SDK against a local HTTPS fake of ARM."""

from __future__ import annotations

import base64
import logging
import stat

import pytest
import yaml
from azure.core.credentials import AccessToken
from azure.mgmt.containerservice import ContainerServiceClient

from aiship.clients import azure
from aiship.commands.aks_credentials import aks_credentials
from aiship.support.errors import AuthError, ConfigError, NotFound

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
CLUSTER_PATH = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-prod/providers/"
    "Microsoft.ContainerService/managedClusters/aks-prod"
)
SECRET_TOKEN = "kube-token-that-must-not-leak"


class StaticToken:
    """Any credential whose get_token() returns an AccessToken will do for the SDK."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken("arm-token-that-must-not-leak", 4_102_444_800)


def kubeconfig(user: dict) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "aks-prod",
            "clusters": [
                {"name": "aks-prod", "cluster": {"server": "https://aks-prod.example:443"}}
            ],
            "contexts": [{"name": "aks-prod", "context": {"cluster": "aks-prod", "user": "u"}}],
            "users": [{"name": "u", "user": user}],
        }
    )


def credential_results(config: str) -> dict:
    value = base64.b64encode(config.encode()).decode()
    return {"kubeconfigs": [{"name": "clusterUser", "value": value}]}


@pytest.fixture
def client(https_fake):
    return azure.management_client(
        ContainerServiceClient,
        SUBSCRIPTION,
        token_credential=StaticToken(),
        base_url=https_fake.url,
        connection_verify=str(https_fake.ca_pem),
        retry_total=0,
    )


def test_user_credentials_are_written_private_and_never_logged(
    https_fake, client, tmp_path, caplog, capsys
):
    config = kubeconfig({"token": SECRET_TOKEN})
    https_fake.server.expect_oneshot_request(
        CLUSTER_PATH + "/listClusterUserCredential",
        method="POST",
        query_string={"api-version": client._config.api_version, "format": "exec"},
    ).respond_with_json(credential_results(config))
    out = tmp_path / "kube" / "config"
    with caplog.at_level(logging.DEBUG):
        result = aks_credentials(
            "rg-prod", "aks-prod", out, subscription=SUBSCRIPTION, client=client
        )
    assert out.read_text() == config
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert (result.context, result.server, result.admin) == (
        "aks-prod",
        "https://aks-prod.example:443",
        False,
    )
    https_fake.server.check_assertions()
    request, _ = https_fake.server.log[-1]
    assert request.headers["Authorization"] == "Bearer arm-token-that-must-not-leak"
    seen = caplog.text + "".join(capsys.readouterr())
    assert SECRET_TOKEN not in seen and "arm-token" not in seen


def test_admin_credentials_only_when_asked(https_fake, client, tmp_path):
    https_fake.server.expect_oneshot_request(
        CLUSTER_PATH + "/listClusterAdminCredential", method="POST"
    ).respond_with_json(credential_results(kubeconfig({"token": SECRET_TOKEN})))
    result = aks_credentials(
        "rg-prod",
        "aks-prod",
        tmp_path / "config",
        subscription=SUBSCRIPTION,
        admin=True,
        client=client,
    )
    assert result.admin
    https_fake.server.check_assertions()


def test_a_missing_cluster_names_subscription_group_and_name(https_fake, client, tmp_path):
    https_fake.server.expect_request(
        CLUSTER_PATH + "/listClusterUserCredential", method="POST"
    ).respond_with_json(
        {"error": {"code": "ResourceNotFound", "message": "The Resource was not found."}},
        status=404,
    )
    with pytest.raises(NotFound) as info:
        aks_credentials(
            "rg-prod", "aks-prod", tmp_path / "config", subscription=SUBSCRIPTION, client=client
        )
    message = str(info.value)
    assert "'aks-prod'" in message and "'rg-prod'" in message and SUBSCRIPTION in message
    assert not (tmp_path / "config").exists()


@pytest.mark.parametrize(
    ("admin", "role"),
    [
        (False, "Azure Kubernetes Service Cluster User Role"),
        (True, "Azure Kubernetes Service Cluster Admin Role"),
    ],
)
def test_forbidden_names_the_role_needed(https_fake, client, tmp_path, admin, role):
    https_fake.server.expect_request(
        CLUSTER_PATH + ("/listClusterAdminCredential" if admin else "/listClusterUserCredential"),
        method="POST",
    ).respond_with_json(
        {"error": {"code": "AuthorizationFailed", "message": "no access"}}, status=403
    )
    with pytest.raises(AuthError, match=role):
        aks_credentials(
            "rg-prod",
            "aks-prod",
            tmp_path / "config",
            subscription=SUBSCRIPTION,
            admin=admin,
            client=client,
        )


def test_entra_id_cluster_without_kubelogin_says_what_is_missing(
    https_fake, client, tmp_path, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    config = kubeconfig(
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "kubelogin",
                "args": ["get-token"],
            }
        }
    )
    https_fake.server.expect_request(
        CLUSTER_PATH + "/listClusterUserCredential", method="POST"
    ).respond_with_json(credential_results(config))
    with pytest.raises(ConfigError, match="needs kubelogin on PATH"):
        aks_credentials(
            "rg-prod", "aks-prod", tmp_path / "config", subscription=SUBSCRIPTION, client=client
        )
    assert not (tmp_path / "config").exists()


def test_subscription_is_required():
    with pytest.raises(ConfigError, match="AZURE_SUBSCRIPTION_ID"):
        azure.subscription_id(None, env={})
    assert azure.subscription_id(None, env={"AZURE_SUBSCRIPTION_ID": "s"}) == "s"
