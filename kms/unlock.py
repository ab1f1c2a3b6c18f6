"""Where the store password comes from: TATUM_KMS_PASSWORD or a prompt, AWS Secrets Manager, Azure Key Vault, VGS.

Variables, as the original's, plus the endpoint overrides for private deployments and tests:

- prompt (default): TATUM_KMS_PASSWORD, else the CLI's hidden prompt.
- --aws: TATUM_KMS_AWS_REGION, TATUM_KMS_AWS_SECRET_NAME, TATUM_KMS_AWS_SECRET_KEY (the field of the JSON
  secret holding the password), TATUM_KMS_AWS_ACCESS_KEY_ID and TATUM_KMS_AWS_SECRET_ACCESS_KEY (when both
  are unset, boto3's own chain is used: AWS_* variables, profile, instance role). AWS_ENDPOINT_URL
  points the client at another endpoint (VPC endpoint, LocalStack, moto).
- --azure: TATUM_KMS_AZURE_VAULTURL (a host name, as the original takes it, or an https URL),
  TATUM_KMS_AZURE_SECRETNAME, TATUM_KMS_AZURE_SECRETVERSION (optional: the latest version when unset).
  The credential is azure-identity's: ClientSecretCredential when AZURE_TENANT_ID, AZURE_CLIENT_ID and
  AZURE_CLIENT_SECRET are set, else DefaultAzureCredential (managed identity, workload identity, az
  login...). AZURE_AUTHORITY_HOST names another login endpoint (sovereign cloud, Azure Stack, a test
  server); for a host that is not a public Azure cloud, instance discovery (a call to
  login.microsoftonline.com) is skipped. The original fetched the Key Vault URL with no credential
  and read `data[0].value`, which Key Vault never answers; this uses the real Key Vault client.
- --vgs: TATUM_KMS_VGS_USERNAME, TATUM_KMS_VGS_PASSWORD, TATUM_KMS_VGS_ALIAS; TATUM_KMS_VGS_URL
  replaces https://api.live.verygoodvault.com (e.g. the sandbox vault).

TLS is always verified. HTTPS_PROXY/NO_PROXY and REQUESTS_CA_BUNDLE (a private CA) are read from the
process environment by the HTTP clients, as usual. Unlike the original, a missing setting is an
error naming the variable rather than a prompt: these sources exist for unattended starts.
Every failure is one ConfigError line naming the source and the variables to check, never a value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any
from urllib.parse import quote, urlsplit

from kms.errors import ConfigError

PROMPT_TEXT = "Enter password to decrypt wallet store:"
VGS_DEFAULT_URL = "https://api.live.verygoodvault.com"
_CONNECT_TIMEOUT = 10
_READ_TIMEOUT = 30
_AZURE_PUBLIC_AUTHORITIES = ("login.microsoftonline.com", "login.chinacloudapi.cn", "login.microsoftonline.us")


class PasswordSource(Enum):
    """The password's source, chosen by --aws, --azure or --vgs (none: environment or prompt)."""

    PROMPT = "LOCAL"
    AWS = "AWS"
    AZURE = "AZURE"
    VGS = "VGS"


def source_from_flags(aws: bool, azure: bool, vgs: bool) -> PasswordSource:
    """The source the flags select; more than one flag is a ConfigError."""
    chosen = [source for flag, source in ((aws, PasswordSource.AWS), (azure, PasswordSource.AZURE),
                                          (vgs, PasswordSource.VGS)) if flag]
    if len(chosen) > 1:
        raise ConfigError("Choose one password source: --aws, --azure or --vgs, not several.")
    return chosen[0] if chosen else PasswordSource.PROMPT


def get_password(source: PasswordSource, env: Mapping[str, str], ask: Callable[[str], str]) -> str:
    """The store password from `source`; `ask` is the CLI's hidden prompt, used only for PROMPT."""
    if source is PasswordSource.AWS:
        return _from_aws(env)
    if source is PasswordSource.AZURE:
        return _from_azure(env)
    if source is PasswordSource.VGS:
        return _from_vgs(env)
    return env.get("TATUM_KMS_PASSWORD") or ask(PROMPT_TEXT)


def _required(env: Mapping[str, str], name: str, where: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{where}: {name} is not set.")
    return value


# -- AWS Secrets Manager ----------------------------------------------------------------------------

_AWS = "AWS Secrets Manager"
_AWS_KEYS = "TATUM_KMS_AWS_ACCESS_KEY_ID and TATUM_KMS_AWS_SECRET_ACCESS_KEY"
_AWS_REFUSED_CODES = {
    "AccessDenied", "AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId",
    "SignatureDoesNotMatch", "ExpiredTokenException", "InvalidSignatureException", "IncompleteSignature",
}


def _from_aws(env: Mapping[str, str]) -> str:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    secret_name = _required(env, "TATUM_KMS_AWS_SECRET_NAME", _AWS)
    field = _required(env, "TATUM_KMS_AWS_SECRET_KEY", _AWS)
    region = env.get("TATUM_KMS_AWS_REGION") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError(f"{_AWS}: TATUM_KMS_AWS_REGION is not set.")
    key_id, key_secret = env.get("TATUM_KMS_AWS_ACCESS_KEY_ID"), env.get("TATUM_KMS_AWS_SECRET_ACCESS_KEY")
    if bool(key_id) != bool(key_secret):
        raise ConfigError(f"{_AWS}: set both {_AWS_KEYS}, or neither to use the default AWS credentials.")
    config = Config(connect_timeout=_CONNECT_TIMEOUT, read_timeout=_READ_TIMEOUT,
                    retries={"max_attempts": 2, "mode": "standard"})
    try:
        client = boto3.session.Session().client(
            "secretsmanager", region_name=region, aws_access_key_id=key_id or None,
            aws_secret_access_key=key_secret or None, endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            config=config,
        )
        answer = client.get_secret_value(SecretId=secret_name)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "ResourceNotFoundException":
            raise ConfigError(f"{_AWS}: the secret named by TATUM_KMS_AWS_SECRET_NAME does not exist "
                              f"(check it and TATUM_KMS_AWS_REGION).") from None
        if code in _AWS_REFUSED_CODES or status in (401, 403):
            raise ConfigError(f"{_AWS} refused access to the secret: check {_AWS_KEYS} and that the "
                              f"key may call secretsmanager:GetSecretValue.") from None
        raise ConfigError(f"{_AWS} failed ({code or status}) reading the secret named by "
                          f"TATUM_KMS_AWS_SECRET_NAME.") from None
    except NoCredentialsError:
        raise ConfigError(f"{_AWS}: no AWS credentials; set {_AWS_KEYS}.") from None
    except NoRegionError:
        raise ConfigError(f"{_AWS}: TATUM_KMS_AWS_REGION is not set.") from None
    except EndpointConnectionError:
        raise ConfigError(f"{_AWS} is unreachable: check TATUM_KMS_AWS_REGION and AWS_ENDPOINT_URL, "
                          f"and the network.") from None
    except (BotoCoreError, ValueError) as exc:
        raise ConfigError(f"{_AWS} could not be reached or understood ({type(exc).__name__}): check "
                          f"TATUM_KMS_AWS_REGION and AWS_ENDPOINT_URL.") from None
    text = answer.get("SecretString")
    if not text:
        raise ConfigError(f"{_AWS}: the secret named by TATUM_KMS_AWS_SECRET_NAME has no text value "
                          f"(binary secrets are not supported).")
    try:
        document = json.loads(text)
    except ValueError:
        raise ConfigError(f"{_AWS}: the secret named by TATUM_KMS_AWS_SECRET_NAME is not JSON; store "
                          f"it as {{\"<TATUM_KMS_AWS_SECRET_KEY>\": \"<password>\"}}.") from None
    password = document.get(field) if isinstance(document, dict) else None
    if not isinstance(password, str) or not password:
        raise ConfigError(f"{_AWS}: the secret has no text field named by TATUM_KMS_AWS_SECRET_KEY.")
    return password


# -- Azure Key Vault ------------------------------------------------------------------------------

_AZURE = "Azure Key Vault"
_AZURE_IDENTITY = "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or the managed identity)"


def azure_vault_url(value: str) -> str:
    """The vault URL for TATUM_KMS_AZURE_VAULTURL, which may be a bare host (as the original takes it)."""
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = f"https://{value}"
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(f"{_AZURE}: TATUM_KMS_AZURE_VAULTURL must be a host name or an https:// URL.")
    return f"https://{parts.netloc}"


def _azure_credential(env: Mapping[str, str]) -> Any:
    """ClientSecretCredential from the AZURE_* variables when all three are set, else DefaultAzureCredential."""
    authority = env.get("AZURE_AUTHORITY_HOST") or None
    tenant, client, secret = (env.get(name) for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"))
    if tenant and client and secret:
        from azure.identity import ClientSecretCredential

        options: dict[str, Any] = {"retry_total": 1, "connection_timeout": _CONNECT_TIMEOUT}
        if authority:
            host = urlsplit(authority if "://" in authority else f"https://{authority}").hostname or ""
            options.update(authority=authority, disable_instance_discovery=host not in _AZURE_PUBLIC_AUTHORITIES)
        return ClientSecretCredential(tenant, client, secret, **options)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(**({"authority": authority} if authority else {}))


def _from_azure(env: Mapping[str, str]) -> str:
    import logging
    import ssl

    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )
    from azure.keyvault.secrets import SecretClient

    azure_log = logging.getLogger("azure")
    if not azure_log.handlers:  # without a handler its warnings would reach stderr through logging.lastResort
        azure_log.addHandler(logging.NullHandler())
    vault_url = azure_vault_url(_required(env, "TATUM_KMS_AZURE_VAULTURL", _AZURE))
    name = _required(env, "TATUM_KMS_AZURE_SECRETNAME", _AZURE)
    version = env.get("TATUM_KMS_AZURE_SECRETVERSION", "").strip() or None
    try:
        credential = _azure_credential(env)
        with SecretClient(vault_url, credential, connection_timeout=_CONNECT_TIMEOUT, read_timeout=_READ_TIMEOUT,
                          retry_total=1) as client:
            secret = client.get_secret(name, version)
    except ResourceNotFoundError:
        raise ConfigError(f"{_AZURE}: no such secret at {vault_url}; check TATUM_KMS_AZURE_SECRETNAME and "
                          f"TATUM_KMS_AZURE_SECRETVERSION.") from None
    except ClientAuthenticationError as exc:
        if _caused_by(exc, (ServiceRequestError, ServiceResponseError, ConnectionError, ssl.SSLError)):
            raise ConfigError(f"{_AZURE}: the sign-in endpoint is unreachable (network, proxy or TLS "
                              f"certificate); check AZURE_AUTHORITY_HOST.") from None
        raise ConfigError(f"{_AZURE}: sign-in failed for {vault_url}; check {_AZURE_IDENTITY} and "
                          f"AZURE_AUTHORITY_HOST.") from None
    except (ServiceRequestError, ServiceResponseError):
        raise ConfigError(f"{_AZURE} is unreachable at {vault_url} (network, proxy or TLS certificate); "
                          f"check TATUM_KMS_AZURE_VAULTURL.") from None
    except HttpResponseError as exc:
        if exc.status_code in (401, 403):
            raise ConfigError(f"{_AZURE} refused access to the secret at {vault_url}: grant {_AZURE_IDENTITY} "
                              f"'get' on secrets.") from None
        raise ConfigError(f"{_AZURE} answered HTTP {exc.status_code} for the secret at {vault_url}; check "
                          f"TATUM_KMS_AZURE_SECRETNAME and TATUM_KMS_AZURE_SECRETVERSION.") from None
    except ValueError:  # e.g. the challenge names a resource that is not this vault's
        raise ConfigError(f"{_AZURE}: {vault_url} did not answer as a Key Vault; check "
                          f"TATUM_KMS_AZURE_VAULTURL.") from None
    if not secret.value:
        raise ConfigError(f"{_AZURE}: the secret named by TATUM_KMS_AZURE_SECRETNAME is empty.")
    return secret.value


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """True when `exc` or an exception in its cause/context chain is one of `kinds`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


# -- VGS ------------------------------------------------------------------------------------------

_VGS = "VGS"


def _from_vgs(env: Mapping[str, str]) -> str:
    import requests

    username = _required(env, "TATUM_KMS_VGS_USERNAME", _VGS)
    password = _required(env, "TATUM_KMS_VGS_PASSWORD", _VGS)
    alias = _required(env, "TATUM_KMS_VGS_ALIAS", _VGS)
    base = (env.get("TATUM_KMS_VGS_URL") or VGS_DEFAULT_URL).rstrip("/")
    if not base.startswith("https://"):
        raise ConfigError(f"{_VGS}: TATUM_KMS_VGS_URL must be an https:// URL.")
    url = f"{base}/aliases/{quote(alias, safe='')}"
    try:
        response = requests.get(url, auth=(username, password), timeout=(_CONNECT_TIMEOUT, _READ_TIMEOUT),
                                headers={"Accept": "application/json"})
    except requests.RequestException:
        raise ConfigError(f"{_VGS} is unreachable (network, proxy or TLS certificate); check "
                          f"TATUM_KMS_VGS_URL.") from None
    if response.status_code in (401, 403):
        raise ConfigError(f"{_VGS} refused the credentials: check TATUM_KMS_VGS_USERNAME and "
                          f"TATUM_KMS_VGS_PASSWORD.")
    if response.status_code == 404:
        raise ConfigError(f"{_VGS}: no such alias; check TATUM_KMS_VGS_ALIAS.")
    if not response.ok:
        raise ConfigError(f"{_VGS} answered HTTP {response.status_code}; check TATUM_KMS_VGS_URL and "
                          f"TATUM_KMS_VGS_ALIAS.")
    try:
        value = response.json()["data"][0]["value"]
    except (ValueError, KeyError, IndexError, TypeError):
        value = None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{_VGS}: the answer for TATUM_KMS_VGS_ALIAS holds no value (data[0].value).")
    return value
