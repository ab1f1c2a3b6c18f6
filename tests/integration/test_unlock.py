"""Password sources against real servers on 127.0.0.1: moto (AWS) through boto3, a Key Vault and Entra ID
pair reached by the real Azure SDK through a CONNECT proxy, and a VGS alias endpoint; TLS verified
against a CA made for the run."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import certifi
import pytest

from kms.errors import ConfigError
from kms.unlock import PROMPT_TEXT, PasswordSource, get_password, source_from_flags
from tests.kms_process import KMS_BIN, Kms
from tests.servers import ConnectProxy, EntraServer, KeyVaultServer, MotoServer, TestCa, VgsServer, free_port

AWS_PASSWORD = "aws-held store password ✓"
AZURE_PASSWORD = "azure-held store password"
AZURE_OLD_PASSWORD = "azure-held older version"
VGS_PASSWORD = "vgs-held store password"


def never_ask(prompt: str) -> str:
    raise AssertionError(f"the prompt must not be used: {prompt}")


def one_line_without(error: pytest.ExceptionInfo[ConfigError], *secrets: str) -> str:
    """The error's message, checked to be one line that holds none of `secrets`."""
    message = str(error.value)
    assert "\n" not in message
    for secret in secrets:
        assert secret not in message
    return message


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("ca"))


@pytest.fixture(autouse=True)
def network_env(monkeypatch: pytest.MonkeyPatch, ca: TestCa) -> None:
    """No proxy and no cloud settings from the machine; TLS trusts the test CA only."""
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") or name.startswith(
                ("AWS_", "AZURE_", "TATUM_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


# -- prompt and flags -----------------------------------------------------------------------------


def test_tatum_kms_password_is_used_without_asking() -> None:
    assert get_password(PasswordSource.PROMPT, {"TATUM_KMS_PASSWORD": "from env"}, never_ask) == "from env"


@pytest.mark.parametrize("env", [{}, {"TATUM_KMS_PASSWORD": ""}])
def test_without_tatum_kms_password_the_cli_prompt_is_asked_once(env: dict[str, str]) -> None:
    asked: list[str] = []
    assert get_password(PasswordSource.PROMPT, env, lambda p: asked.append(p) or "typed") == "typed"
    assert asked == [PROMPT_TEXT]


def test_flags_choose_one_source() -> None:
    assert source_from_flags(False, False, False) is PasswordSource.PROMPT
    assert source_from_flags(True, False, False) is PasswordSource.AWS
    assert source_from_flags(False, True, False) is PasswordSource.AZURE
    assert source_from_flags(False, False, True) is PasswordSource.VGS
    with pytest.raises(ConfigError, match="one password source"):
        source_from_flags(True, False, True)


# -- AWS Secrets Manager (moto server, real boto3) ------------------------------------------------


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, str]]:
    """moto with IAM enforced after set-up: a reader allowed GetSecretValue, an outsider with no policy."""
    server = MotoServer(free_actions=8)  # the eight set-up calls below
    try:
        admin = {"endpoint_url": server.url, "region_name": "eu-central-1",
                 "aws_access_key_id": "AKIASETUP0000000000", "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **admin)
        keys = {}
        for user in ("kms-reader", "outsider"):
            iam.create_user(UserName=user)
            keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
        iam.put_user_policy(UserName="kms-reader", PolicyName="read-kms-password", PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}))
        manager = boto3.client("secretsmanager", **admin)
        manager.create_secret(Name="tatum/kms", SecretString=json.dumps({"password": AWS_PASSWORD, "note": "x"}))
        manager.create_secret(Name="tatum/not-json", SecretString=AWS_PASSWORD)
        manager.create_secret(Name="tatum/binary", SecretBinary=AWS_PASSWORD.encode())
        yield {
            "AWS_ENDPOINT_URL": server.url,
            "TATUM_KMS_AWS_REGION": "eu-central-1",
            "TATUM_KMS_AWS_SECRET_NAME": "tatum/kms",
            "TATUM_KMS_AWS_SECRET_KEY": "password",
            "TATUM_KMS_AWS_ACCESS_KEY_ID": keys["kms-reader"]["AccessKeyId"],
            "TATUM_KMS_AWS_SECRET_ACCESS_KEY": keys["kms-reader"]["SecretAccessKey"],
            "outsider_id": keys["outsider"]["AccessKeyId"],
            "outsider_secret": keys["outsider"]["SecretAccessKey"],
        }
    finally:
        server.close()


def test_aws_password_is_the_named_field_of_the_json_secret(aws: dict[str, str]) -> None:
    assert get_password(PasswordSource.AWS, aws, never_ask) == AWS_PASSWORD


def test_aws_missing_secret_names_the_secret_variable(aws: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.AWS, {**aws, "TATUM_KMS_AWS_SECRET_NAME": "tatum/absent"}, never_ask)
    message = one_line_without(caught, aws["TATUM_KMS_AWS_SECRET_ACCESS_KEY"], aws["TATUM_KMS_AWS_ACCESS_KEY_ID"])
    assert "AWS Secrets Manager" in message and "does not exist" in message
    assert "TATUM_KMS_AWS_SECRET_NAME" in message


@pytest.mark.parametrize("who", ["outsider", "wrong secret key", "unknown key"])
def test_aws_refused_access_names_the_key_variables(aws: dict[str, str], who: str) -> None:
    key_id, key_secret = {
        "outsider": (aws["outsider_id"], aws["outsider_secret"]),
        "wrong secret key": (aws["TATUM_KMS_AWS_ACCESS_KEY_ID"], "wrong-secret-access-key"),
        "unknown key": ("AKIAUNKNOWN000000000", "wrong-secret-access-key"),
    }[who]
    env = {**aws, "TATUM_KMS_AWS_ACCESS_KEY_ID": key_id, "TATUM_KMS_AWS_SECRET_ACCESS_KEY": key_secret}
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.AWS, env, never_ask)
    message = one_line_without(caught, key_id, key_secret, AWS_PASSWORD)
    assert "refused access" in message and "TATUM_KMS_AWS_ACCESS_KEY_ID" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"TATUM_KMS_AWS_SECRET_KEY": "passwd"}, "no text field named by TATUM_KMS_AWS_SECRET_KEY"),
        ({"TATUM_KMS_AWS_SECRET_NAME": "tatum/not-json"}, "is not JSON"),
        ({"TATUM_KMS_AWS_SECRET_NAME": "tatum/binary"}, "binary secrets are not supported"),
    ],
)
def test_aws_secret_without_the_password_field_says_which_variable(aws: dict[str, str], change: dict[str, str],
                                                                   expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.AWS, {**aws, **change}, never_ask)
    assert expected in one_line_without(caught, AWS_PASSWORD, aws["TATUM_KMS_AWS_SECRET_ACCESS_KEY"])


def test_aws_unreachable_endpoint_is_one_line_and_quick(aws: dict[str, str]) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.AWS, {**aws, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}, never_ask)
    assert "unreachable" in one_line_without(caught, aws["TATUM_KMS_AWS_SECRET_ACCESS_KEY"])
    assert "AWS_ENDPOINT_URL" in str(caught.value)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("unset", ["TATUM_KMS_AWS_SECRET_NAME", "TATUM_KMS_AWS_SECRET_KEY", "TATUM_KMS_AWS_REGION"])
def test_aws_missing_setting_names_it(aws: dict[str, str], unset: str) -> None:
    env = {k: v for k, v in aws.items() if k != unset}
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.AWS, env, never_ask)
    assert str(caught.value) == f"AWS Secrets Manager: {unset} is not set."


def test_aws_half_a_key_pair_is_refused_before_any_call(aws: dict[str, str]) -> None:
    env = {k: v for k, v in aws.items() if k != "TATUM_KMS_AWS_SECRET_ACCESS_KEY"}
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.AWS, env, never_ask)
    assert "set both TATUM_KMS_AWS_ACCESS_KEY_ID and TATUM_KMS_AWS_SECRET_ACCESS_KEY" in str(caught.value)


# -- Azure Key Vault (real SecretClient + ClientSecretCredential, local Entra ID and vault) ------------

TENANT = "6f1a2b3c-0000-4000-8000-00000000aaaa"


@pytest.fixture(scope="module")
def azure_servers(ca: TestCa) -> Iterator[dict[str, object]]:
    entra = EntraServer(ca, "login.kms.test", TENANT, {"kms-app": "kms-app-secret", "other-app": "other-secret"})
    vault = KeyVaultServer(ca, "tatumkms.vault.kms.test", "https://vault.kms.test", entra,
                           {("wallet-password", ""): AZURE_PASSWORD, ("wallet-password", "v1"): AZURE_OLD_PASSWORD},
                           readers={"kms-app"})
    # A "vault" whose challenge asks for a token of another resource: the SDK must not hand one over.
    impostor = KeyVaultServer(ca, "impostor.vault.kms.test", "https://vault.azure.net", entra,
                              {("wallet-password", ""): "x"}, readers={"kms-app"})
    proxy = ConnectProxy({"login.kms.test": entra.server.port, "tatumkms.vault.kms.test": vault.server.port,
                          "impostor.vault.kms.test": impostor.server.port})
    try:
        yield {"entra": entra, "vault": vault, "impostor": impostor, "proxy": proxy}
    finally:
        proxy.close()
        for server in (impostor, vault, entra):
            server.close()


@pytest.fixture
def azure(azure_servers: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The variables of an operator using a service principal; the proxy is the process's HTTPS_PROXY."""
    monkeypatch.setenv("HTTPS_PROXY", azure_servers["proxy"].url)  # type: ignore[attr-defined]
    return {
        "TATUM_KMS_AZURE_VAULTURL": "tatumkms.vault.kms.test",  # a bare host, as the original takes it
        "TATUM_KMS_AZURE_SECRETNAME": "wallet-password",
        "TATUM_KMS_AZURE_SECRETVERSION": "v1",
        "AZURE_TENANT_ID": TENANT,
        "AZURE_CLIENT_ID": "kms-app",
        "AZURE_CLIENT_SECRET": "kms-app-secret",
        "AZURE_AUTHORITY_HOST": "https://login.kms.test",
    }


def test_azure_secret_version_is_read_through_the_real_challenge_and_token_flow(
        azure: dict[str, str], azure_servers: dict[str, object]) -> None:
    entra: EntraServer = azure_servers["entra"]  # type: ignore[assignment]
    vault: KeyVaultServer = azure_servers["vault"]  # type: ignore[assignment]
    assert get_password(PasswordSource.AZURE, azure, never_ask) == AZURE_OLD_PASSWORD
    assert any(r.path.endswith("/oauth2/v2.0/token") for r in entra.server.requests)
    assert {scope for _, scope in entra.tokens.values()} == {"https://vault.kms.test/.default"}
    answered = [r for r in vault.server.requests if r.path == "/secrets/wallet-password/v1"]
    assert answered and answered[-1].headers["authorization"].removeprefix("Bearer ") in entra.tokens


def test_azure_without_version_reads_the_latest_and_accepts_a_full_url(azure: dict[str, str]) -> None:
    env = {**azure, "TATUM_KMS_AZURE_VAULTURL": "https://tatumkms.vault.kms.test/"}
    del env["TATUM_KMS_AZURE_SECRETVERSION"]
    assert get_password(PasswordSource.AZURE, env, never_ask) == AZURE_PASSWORD


@pytest.mark.parametrize("change", [{"TATUM_KMS_AZURE_SECRETNAME": "absent"}, {"TATUM_KMS_AZURE_SECRETVERSION": "v9"}])
def test_azure_missing_secret_names_the_name_and_version_variables(azure: dict[str, str],
                                                                   change: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.AZURE, {**azure, **change}, never_ask)
    message = one_line_without(caught, "kms-app-secret")
    assert "no such secret" in message and "TATUM_KMS_AZURE_SECRETNAME" in message


def test_azure_wrong_client_secret_is_a_sign_in_failure_without_the_secret(azure: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.AZURE, {**azure, "AZURE_CLIENT_SECRET": "not-the-app-secret"}, never_ask)
    message = one_line_without(caught, "not-the-app-secret", "kms-app-secret")
    assert "sign-in failed" in message and "AZURE_CLIENT_SECRET" in message


def test_azure_identity_without_permission_is_refused(azure: dict[str, str]) -> None:
    env = {**azure, "AZURE_CLIENT_ID": "other-app", "AZURE_CLIENT_SECRET": "other-secret"}
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.AZURE, env, never_ask)
    assert "refused access" in one_line_without(caught, "other-secret")


def test_azure_unknown_vault_host_is_unreachable(azure: dict[str, str], azure_servers: dict[str, object]) -> None:
    proxy: ConnectProxy = azure_servers["proxy"]  # type: ignore[assignment]
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.AZURE, {**azure, "TATUM_KMS_AZURE_VAULTURL": "nowhere.vault.kms.test"}, never_ask)
    message = one_line_without(caught, "kms-app-secret")
    assert "unreachable" in message and "TATUM_KMS_AZURE_VAULTURL" in message
    assert "nowhere.vault.kms.test:443" in proxy.refused


def test_azure_vault_asking_a_token_for_another_resource_gets_none(
        azure: dict[str, str], azure_servers: dict[str, object]) -> None:
    entra: EntraServer = azure_servers["entra"]  # type: ignore[assignment]
    before = len(entra.tokens)
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.AZURE, {**azure, "TATUM_KMS_AZURE_VAULTURL": "impostor.vault.kms.test"},
                     never_ask)
    assert "did not answer as a Key Vault" in str(caught.value)
    assert len(entra.tokens) == before


def test_azure_certificate_not_trusted_is_refused(azure: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())  # the public CAs only: the test CA is not among them
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.AZURE, azure, never_ask)
    assert "unreachable" in str(caught.value) and "TLS" in str(caught.value)


def test_azure_plain_http_vault_url_is_refused(azure: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="TATUM_KMS_AZURE_VAULTURL must be"):
        get_password(PasswordSource.AZURE, {**azure, "TATUM_KMS_AZURE_VAULTURL": "http://tatumkms.vault.kms.test"},
                     never_ask)


# -- VGS (alias endpoint with basic auth) -----------------------------------------------------------


@pytest.fixture(scope="module")
def vgs_server(ca: TestCa) -> Iterator[VgsServer]:
    server = VgsServer(ca, "US7ZqXkY", "vgs-api-password", {"tok_live_9xKz": VGS_PASSWORD, "tok_empty": None})
    yield server
    server.close()


@pytest.fixture
def vgs(vgs_server: VgsServer) -> dict[str, str]:
    return {"TATUM_KMS_VGS_URL": vgs_server.url, "TATUM_KMS_VGS_USERNAME": "US7ZqXkY",
            "TATUM_KMS_VGS_PASSWORD": "vgs-api-password", "TATUM_KMS_VGS_ALIAS": "tok_live_9xKz"}


def test_vgs_alias_value_is_the_password(vgs: dict[str, str], vgs_server: VgsServer) -> None:
    assert get_password(PasswordSource.VGS, vgs, never_ask) == VGS_PASSWORD
    assert vgs_server.server.requests[-1].path == "/aliases/tok_live_9xKz"


def test_vgs_wrong_credentials_name_the_variables_not_the_values(vgs: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.VGS, {**vgs, "TATUM_KMS_VGS_PASSWORD": "guessed-api-password"}, never_ask)
    message = one_line_without(caught, "guessed-api-password", "vgs-api-password", "US7ZqXkY")
    assert "refused" in message and "TATUM_KMS_VGS_PASSWORD" in message


@pytest.mark.parametrize(("alias", "expected"), [("tok_unknown", "no such alias"), ("tok_empty", "holds no value")])
def test_vgs_alias_without_a_value_names_the_alias_variable(vgs: dict[str, str], alias: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.VGS, {**vgs, "TATUM_KMS_VGS_ALIAS": alias}, never_ask)
    message = one_line_without(caught, "vgs-api-password")
    assert expected in message and "TATUM_KMS_VGS_ALIAS" in message


def test_vgs_unreachable_names_the_url_variable(vgs: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        get_password(PasswordSource.VGS, {**vgs, "TATUM_KMS_VGS_URL": f"https://127.0.0.1:{free_port()}"}, never_ask)
    assert "unreachable" in one_line_without(caught, "vgs-api-password")
    assert "TATUM_KMS_VGS_URL" in str(caught.value)


def test_vgs_certificate_not_trusted_is_refused(vgs: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    with pytest.raises(ConfigError, match="TLS certificate"):
        get_password(PasswordSource.VGS, vgs, never_ask)


def test_vgs_plain_http_is_refused_before_sending_credentials(vgs: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="must be an https:// URL"):
        get_password(PasswordSource.VGS, {**vgs, "TATUM_KMS_VGS_URL": "http://127.0.0.1:1"}, never_ask)


# -- through the real tatum-kms process -----------------------------------------------------------


def run_kms(home: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run tatum-kms with exactly `env` on top of a clean base (no TATUM_* from the test's own environment)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TATUM_", "SOFTHSM2_CONF", "AWS_", "AZURE_"))}
    return subprocess.run([KMS_BIN, *args], input="", capture_output=True, text=True, timeout=120,
                          env={**base, "HOME": str(home), **env})


@pytest.mark.parametrize("source", ["aws", "azure", "vgs"])
def test_cli_store_made_with_a_vault_password_opens_with_that_password(
        tmp_path: Path, source: str, request: pytest.FixtureRequest) -> None:
    settings = {"aws": lambda: request.getfixturevalue("aws"), "azure": lambda: request.getfixturevalue("azure"),
                "vgs": lambda: request.getfixturevalue("vgs")}[source]()
    vault_password = {"aws": AWS_PASSWORD, "azure": AZURE_OLD_PASSWORD, "vgs": VGS_PASSWORD}[source]
    env = {**settings, "REQUESTS_CA_BUNDLE": os.environ["REQUESTS_CA_BUNDLE"],
           **({"HTTPS_PROXY": os.environ["HTTPS_PROXY"]} if source == "azure" else {})}
    home = tmp_path / "home"
    made = run_kms(home, ["generatemanagedwallet", "ETH", f"--{source}"], env)
    assert made.returncode == 0, made.stderr
    signature_id = json.loads(made.stdout)["signatureId"]
    exported = Kms(home).ok("export", env={"TATUM_KMS_PASSWORD": vault_password})
    assert list(exported) == [signature_id]
    assert Kms(home).fails("export", env={"TATUM_KMS_PASSWORD": "not the vault password"})


@pytest.mark.parametrize(("source", "variable", "wrong"), [("vgs", "TATUM_KMS_VGS_PASSWORD", "guessed"),
                                                          ("azure", "AZURE_CLIENT_SECRET", "guessed")])
def test_cli_vault_failure_is_one_line_on_stderr(tmp_path: Path, source: str, variable: str, wrong: str,
                                                 request: pytest.FixtureRequest) -> None:
    settings = request.getfixturevalue(source)
    env = {**settings, variable: wrong, "REQUESTS_CA_BUNDLE": os.environ["REQUESTS_CA_BUNDLE"],
           **({"HTTPS_PROXY": os.environ["HTTPS_PROXY"]} if source == "azure" else {})}
    result = run_kms(tmp_path, ["generatemanagedwallet", "ETH", f"--{source}"], env)
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0] and wrong not in lines[0]
    assert not (tmp_path / ".tatumrc" / "wallet.dat").exists()


def test_cli_password_from_the_default_env_file_and_the_environment_wins(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".tatumrc").mkdir(parents=True)
    (home / ".tatumrc" / ".env").write_text('export TATUM_KMS_PASSWORD="from the .env # file"\n')
    made = run_kms(home, ["generatemanagedwallet", "ETH"], {})
    assert made.returncode == 0, made.stderr
    assert run_kms(home, ["export"], {}).returncode == 0
    overridden = run_kms(home, ["export"], {"TATUM_KMS_PASSWORD": "the environment's password"})
    assert overridden.returncode != 0
    missing = run_kms(home, ["export", "--envFile", str(tmp_path / "absent.env")], {})
    assert missing.returncode != 0 and "--envFile" in missing.stderr
