"""The `tatum-kms` command line: the original's commands, flags and JSON output, thin over the store.

Only argparse, json, os and sys are imported at start-up; the store, crypto and chain libraries
load when a command needs them, so `tatum-kms --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kms import __version__
from kms.errors import ConfigError

if TYPE_CHECKING:
    from chains.base import Chain

HELP = f"""tatum-kms {__version__}: keys stay on this machine; pending Tatum transactions are signed here.

Usage
    $ tatum-kms <command> [options]

Wallet commands
    generatewallet <chain>                   Print a new wallet for the chain (not stored).
    generatemanagedwallet <chain>            Generate a wallet and keep it in the wallet store.
    storemanagedwallet <chain>               Keep an existing mnemonic (asked for) in the wallet store.
    storemanagedprivatekey <chain>           Keep an existing private key (asked for) in the wallet store.
    generatemanagedprivatekeybatch <chain> <count>
                                             Generate and keep <count> private keys; one JSON line each.
    getmanagedwallet <signatureId>           Print a stored wallet.
    getprivatekey <signatureId> <index>      Print the private key at <index> of a stored wallet.
    getaddress <signatureId> <index>         Print the address at <index> of a stored wallet.
    removewallet <signatureId>               Delete a wallet from the store.
    export                                   Print every stored wallet.
    import --from <file>                     Import the original's wallet.dat or an `export` JSON.
    changepassword                           Rewrap the store's data key under a new password.

Daemon
    daemon                                   Poll Tatum, check each transaction with --externalUrl, sign, broadcast.
    sandbox [--port N] [--no-execute]        Run a local Tatum-compatible API (demos and tests).

Hardware token (PKCS#11)
    hsm init                                 Create the store bound to a key of its own on the token, or
                                             check that the token holds the store's key.
    hsm rotate                               Move the store to a new token key (O(1) in wallets).

Audit
    audit verify [file]                      Check the daemon's audit log (default audit.log beside the store):
                                             the first edited, inserted, reordered or removed line, or intact.

Debugging
    report [signatureIds]                    Report on the system and the given wallets.
    checkconfig                              Show the settings tatum-kms sees (secrets masked).

Options
    --testnet                  Testnet wallets and networks (mainnet by default).
    --path <file>              Wallet store (default ~/.tatumrc/wallet.dat).
    --envFile <file>           Read variables from this .env file (default ~/.tatumrc/.env).
    --aws | --azure | --vgs    Read the store password from AWS Secrets Manager, Azure Key Vault or VGS.
    --pkcs11Module <lib.so>    PKCS#11 module (or TATUM_KMS_PKCS11_MODULE).
    --pkcs11Token <label>      Token label (or TATUM_KMS_PKCS11_TOKEN); the PIN comes from
                               TATUM_KMS_PKCS11_PIN or a hidden prompt, never from a flag.
    --pkcs11Key <label>        Key label on the token (or TATUM_KMS_PKCS11_KEY; default tatum-kms-kek).
  Daemon only
    --apiKey <key>             Tatum API key (prefer TATUM_API_KEY: flags are visible in the process list).
    --period <seconds>         Seconds between polls, 0.1 to 86400 (default 5).
    --chain <A,B>              Chains to poll (default all).
    --externalUrl <url>        Approval server: each transaction is signed only if it answers 2xx to
                               <url>/<id>. Required on mainnet.
    --externalUrlMethod <GET|POST>
                               How to call the approval server (default GET; POST sends the transaction).
    --approvalTimeout <s>      Seconds the approval server has to answer in full, up to 600 (default 10).
    --concurrency <n>          Approval checks and wallets handled at once (default 32; TATUM_KMS_CONCURRENCY).
    --requestTimeout <s>       Seconds one call to the Tatum API or a node may take in all, from connecting
                               to the last byte, retries included; up to 600 (default 60).
    --maxResponseMiB <n>       Largest response taken from the Tatum API, a node or the approval server,
                               1 to 1024 MiB (default 16).
    --runOnce                  One poll, then exit.
    --wallets <id,id>          With --runOnce: poll for these signature ids only.
    --transactionIds <id,id>   With --runOnce: sign only these pending transactions.
    --logFormat <text|json>    Daemon log lines as text (default) or JSON.
    --metrics <host:port>      Serve Prometheus /metrics and /healthz there (or TATUM_KMS_METRICS; off by
                               default), e.g. 127.0.0.1:9464.
    --auditLog <file>          The audit log of every decision (default audit.log beside the store).

Secrets are never taken from flags: the password comes from TATUM_KMS_PASSWORD, a source above, or a
hidden prompt; a mnemonic or key to store from a hidden prompt, or from standard input (one line each,
password first) when it is not a terminal.
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as a one-line ConfigError instead of printing usage."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise ConfigError(f"{message}: see tatum-kms --help.")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tatum-kms", add_help=False, allow_abbrev=False)
    parser.add_argument("command", nargs="?")
    parser.add_argument("args", nargs="*")
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--version", action="store_true")
    for flag in ("testnet", "aws", "azure", "vgs", "runOnce"):
        parser.add_argument(f"--{flag}", action="store_true")
    for flag in ("path", "envFile", "apiKey", "chain", "externalUrl", "wallets", "transactionIds",
                 "pkcs11Module", "pkcs11Token", "pkcs11Key", "metrics", "auditLog"):
        parser.add_argument(f"--{flag}")
    parser.add_argument("--from", dest="source")
    parser.add_argument("--period", type=_number("seconds", 0.1, 86400), default=5.0)
    parser.add_argument("--approvalTimeout", type=_number("seconds", 0, 600, low_open=True), default=10.0)
    parser.add_argument("--requestTimeout", type=_number("seconds", 0, 600, low_open=True), default=60.0)
    parser.add_argument("--maxResponseMiB", type=_number("MiB", 1, 1024, integer=True), default=16)
    parser.add_argument("--concurrency")
    parser.add_argument("--externalUrlMethod", default="GET", type=str.upper, choices=("GET", "POST"))
    parser.add_argument("--logFormat", "--log-format", default="text", choices=("text", "json"))
    return parser


def _number(unit: str, low: float, high: float, *, low_open: bool = False,
            integer: bool = False) -> Callable[[str], float]:
    """An argparse type: a plain decimal number (ASCII digits; no sign, exponent, nan or inf) in range."""
    import re

    shape = r"[0-9]{1,9}" if integer else r"[0-9]{1,9}(?:\.[0-9]{0,9})?|\.[0-9]{1,9}"
    bounds = f"more than {low:g} and at most {high:g}" if low_open else f"from {low:g} to {high:g}"
    rule = f"must be {'a whole number of' if integer else 'a number of'} {unit}, {bounds}"

    def parse(text: str) -> float:
        value = float(text) if re.fullmatch(shape, text.strip()) else None
        if value is None or value > high or value < low or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"{rule}, got {json.dumps(text)}")
        return int(value) if integer else value

    return parse


MAX_INDEX = 2**31 - 1
MAX_BATCH = 100_000_000


def _shown(text: str, limit: int = 40) -> str:
    """A value from the command line, quoted and escaped for an error line, cut to `limit` characters."""
    return json.dumps(text if len(text) <= limit else text[:limit] + "...")


def _ascii_int(text: str, name: str, low: int, high: int) -> int:
    """`text` as an integer from `low` to `high`; ASCII digits only (not '²', '١' or '๑'), else ConfigError."""
    digits = text.isascii() and text.isdigit() and len(text.lstrip("0")) <= len(str(high))
    if not digits or not low <= int(text) <= high:
        raise ConfigError(f"{name} must be an integer from {low} to {high} in ASCII digits, got {_shown(text)}.")
    return int(text)


class Context:
    """What a command needs: parsed options, the environment, secret input and the store."""

    def __init__(self, opts: argparse.Namespace, env: dict[str, str], env_file: str | None = None) -> None:
        from kms.prompt import SecretInput

        self.opts = opts
        self.env = env
        self.input = SecretInput()
        self._password: str | None = None
        self._token_pin: str | None = None
        self.env_file = env_file  # the .env file actually read, for checkconfig

    @property
    def testnet(self) -> bool:
        return bool(self.opts.testnet)

    def path(self) -> Any:
        from kms.store import resolve_path

        return resolve_path(self.opts.path)

    def arg(self, position: int, name: str) -> str:
        """The command's positional argument `position`, or a ConfigError naming it."""
        if len(self.opts.args) <= position:
            raise ConfigError(f"Missing <{name}>: see tatum-kms --help.")
        return self.opts.args[position]

    def index(self, position: int) -> int:
        """A derivation index: ASCII digits only, 0 to 2^31-1 (the last non-hardened BIP32 index)."""
        return _ascii_int(self.arg(position, "index"), "Index", 0, MAX_INDEX)

    def chain(self, position: int = 0) -> Chain:
        import chains

        return chains.get(self.arg(position, "chain"))

    def password(self, *, confirm: bool = False) -> str:
        """The store password from its source; asked twice on a terminal when creating a store."""
        if self._password is None:
            from kms.unlock import PasswordSource, get_password, source_from_flags

            source = source_from_flags(self.opts.aws, self.opts.azure, self.opts.vgs)
            password = get_password(source, self.env, self.input.ask)
            typed = source is PasswordSource.PROMPT and not self.env.get("TATUM_KMS_PASSWORD")
            if confirm and typed and self.input.interactive:
                if self.input.ask("Repeat the password for the new wallet store:") != password:
                    raise ConfigError("The two passwords differ; nothing was created.")
            self._password = password
        return self._password

    def token(self) -> Any:
        """The token settings from flags or environment, or None when no PKCS#11 module is set."""
        from kms.envelope import TokenSettings

        module = self.opts.pkcs11Module or self.env.get("TATUM_KMS_PKCS11_MODULE")
        label = self.opts.pkcs11Token or self.env.get("TATUM_KMS_PKCS11_TOKEN")
        key = self.opts.pkcs11Key or self.env.get("TATUM_KMS_PKCS11_KEY") or "tatum-kms-kek"
        if not module:
            return None
        if not label:
            raise ConfigError("TATUM_KMS_PKCS11_MODULE is set but not TATUM_KMS_PKCS11_TOKEN (the token label).")
        return TokenSettings(module, label, key, self._pin(label))

    def _pin(self, label: str) -> Callable[[], str]:
        """The PIN, asked for at most once per process and only when a token is really opened."""

        def pin() -> str:
            if self._token_pin is None:
                self._token_pin = self.env.get("TATUM_KMS_PKCS11_PIN") or self.input.ask(
                    f"Enter PIN for token '{label}':"
                )
            return self._token_pin

        return pin

    def open_store(self, *, create: bool = False) -> Any:
        """The unlocked store (created when `create` and there is none yet)."""
        from kms.store import WalletStore, file_kind

        path = self.path()
        new = create and file_kind(path) == "missing"
        return WalletStore.open(path, self.password(confirm=new), self.token(), create=create)


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _signature_id_output(signature_id: str, wallet: dict[str, Any]) -> dict[str, str]:
    output = {"signatureId": signature_id}
    for field in ("address", "xpub"):
        if wallet.get(field):
            output[field] = wallet[field]
    return output


# -- commands -----------------------------------------------------------------------------------


def cmd_generatewallet(ctx: Context) -> None:
    _print(ctx.chain().generate_wallet(ctx.testnet, managed=False))


def cmd_generatemanagedwallet(ctx: Context) -> None:
    chain = ctx.chain()
    wallet = chain.generate_wallet(ctx.testnet, managed=True)
    with ctx.open_store(create=True) as store:
        signature_id = store.add(chain.code, ctx.testnet, wallet)
    _print(_signature_id_output(signature_id, wallet))


def cmd_storemanagedwallet(ctx: Context) -> None:
    chain = ctx.chain()
    if not chain.accepts_mnemonic:
        raise ConfigError(f"{chain.code} wallets have no mnemonic: use storemanagedprivatekey.")
    with ctx.open_store(create=True) as store:
        mnemonic = " ".join(ctx.input.ask("Enter mnemonic to store:").split())
        wallet = chain.wallet_from_mnemonic(mnemonic, ctx.testnet)
        signature_id = store.add(chain.code, ctx.testnet, wallet)
    _print(_signature_id_output(signature_id, wallet))


def cmd_storemanagedprivatekey(ctx: Context) -> None:
    chain = ctx.chain()
    with ctx.open_store(create=True) as store:
        private_key = ctx.input.ask("Enter private key to store:").strip()
        address = chain.address_from_private_key(private_key, ctx.testnet)
        signature_id = store.add(chain.code, ctx.testnet, {"privateKey": private_key, "address": address})
    _print({"signatureId": signature_id})


def cmd_generatemanagedprivatekeybatch(ctx: Context) -> None:
    from kms.batch import generate_batch

    chain = ctx.chain()
    count = _ascii_int(ctx.arg(1, "count"), "Count", 1, MAX_BATCH)
    with ctx.open_store(create=True) as store:
        store.require_writable()
        generate_batch(store, chain, ctx.testnet, count, sys.stdout, sys.stderr)


def cmd_getmanagedwallet(ctx: Context) -> None:
    signature_id = ctx.arg(0, "signatureId")
    with ctx.open_store() as store:
        _print(store.get(signature_id))


def cmd_getprivatekey(ctx: Context) -> None:
    import chains

    signature_id, index = ctx.arg(0, "signatureId"), ctx.index(1)
    with ctx.open_store() as store:
        wallet = store.get(signature_id)
    _print({"privateKey": chains.get(wallet["chain"]).private_key(wallet, index, wallet["testnet"])})


def cmd_getaddress(ctx: Context) -> None:
    import chains

    signature_id, index = ctx.arg(0, "signatureId"), ctx.index(1)
    with ctx.open_store() as store:
        wallet = store.get(signature_id)
    _print({"address": chains.get(wallet["chain"]).address(wallet, index, wallet["testnet"])})


def cmd_removewallet(ctx: Context) -> None:
    with ctx.open_store() as store:
        store.remove(ctx.arg(0, "signatureId"))


def cmd_export(ctx: Context) -> None:
    with ctx.open_store() as store:
        _print(store.export())


def cmd_hsm(ctx: Context) -> None:
    action = ctx.arg(0, "init|rotate")
    if action == "init":
        _hsm_init(ctx)
    elif action == "rotate":
        _hsm_rotate(ctx)
    else:
        raise ConfigError(f"Unknown hsm action '{action}': use `hsm init` or `hsm rotate`.")


def _token_settings(ctx: Context) -> Any:
    settings = ctx.token()
    if settings is None:
        raise ConfigError("Set TATUM_KMS_PKCS11_MODULE and TATUM_KMS_PKCS11_TOKEN (or --pkcs11Module/--pkcs11Token).")
    return settings


def _hsm_init(ctx: Context) -> None:
    """Create the store bound to a key of its own on the token, or check that an existing store's key is there."""
    from kms import envelope
    from kms.store import file_kind, read_header

    settings = _token_settings(ctx)
    path = ctx.path()
    created = file_kind(path) == "missing"
    if created:
        with ctx.open_store(create=True) as store:
            header = store.header
    else:
        header = read_header(path)
        if header.token is None:
            raise ConfigError(f"The wallet store {path} is not bound to a token: `tatum-kms hsm rotate` binds it "
                              "to a new key on the token.")
        envelope.check_token_key(header, settings)
    binding = header.token
    _print({"token": binding.token_label, "keyLabel": binding.key_label, "keyId": binding.key_id,
            "created": created and binding is not None})


def _hsm_rotate(ctx: Context) -> None:
    """Bind the store to a new key of its own on the token (binding a password-only store), then, after the
    commit, destroy the key it was bound to if that key was made for this store alone."""
    import hsm
    from kms import envelope

    settings = _token_settings(ctx)
    with ctx.open_store() as store:
        store.require_writable()
        previous = store.rewrap(ctx.password(), settings, new_token_key=True)
        binding = store.header.token
    retired = kept = None
    old = previous.token
    if old is not None and old.key_id != binding.key_id:
        if not envelope.owns_token_key(previous, old.key_id):
            kept = old.key_id
            print(f"warning: the previous token key {old.key_id} was not made for this store alone (an earlier "
                  "build shared keys by label), so it is left on the token: destroy it once no other store "
                  "uses it.", file=sys.stderr)
        else:
            try:
                with hsm.Token.open(settings.config()) as token:
                    token.destroy_key(token.key(old.key_id))
                retired = old.key_id
            except hsm.HsmError as exc:
                print(f"warning: the previous token key could not be destroyed: {exc}", file=sys.stderr)
    output = {"token": binding.token_label, "keyLabel": binding.key_label, "keyId": binding.key_id,
              "retiredKeyId": retired}
    if kept:
        output["keptKeyId"] = kept
    _print(output)


def cmd_changepassword(ctx: Context) -> None:
    """Rewrap the data key under a new password (from TATUM_KMS_NEW_PASSWORD, a prompt or stdin)."""
    with ctx.open_store() as store:
        store.require_writable()
        new_password = ctx.env.get("TATUM_KMS_NEW_PASSWORD") or ctx.input.ask("Enter the new password:")
        if ctx.input.interactive and not ctx.env.get("TATUM_KMS_NEW_PASSWORD"):
            if ctx.input.ask("Repeat the new password:") != new_password:
                raise ConfigError("The two passwords differ; the password was not changed.")
        store.rewrap(new_password, ctx.token() if store.header.token else None)


def cmd_import(ctx: Context) -> None:
    """Import the original's wallet.dat, or JSON printed by `export`, keeping every signature id."""
    import chains
    from kms.legacy import decrypt_legacy, is_legacy_data, parse_export

    source_text = ctx.opts.source or (ctx.opts.args[0] if ctx.opts.args else None)
    if not source_text:
        raise ConfigError("Name the file to import: tatum-kms import --from OLD_WALLET_DAT.")
    data = _read_import_file(source_text, ctx.path())
    # Read and check everything first: a wrong legacy password or a bad file must not create a store.
    if is_legacy_data(data):
        entries = decrypt_legacy(data, _legacy_password(ctx))
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError("The file to import is neither an original wallet.dat nor JSON printed by `export` "
                              "(it is not UTF-8 text).") from None
        entries = parse_export(text)
    rows = [(sid, w["chain"], w["testnet"], {k: v for k, v in w.items() if k not in ("chain", "testnet")})
            for sid, w in entries.items()]
    with ctx.open_store(create=True) as store:
        imported = store.put_many(rows, skip_existing=True)
    unsigned = sorted({w["chain"] for w in entries.values()} - set(chains.CODES))
    if unsigned:
        print(f"warning: imported wallets of chains this build cannot sign yet: {', '.join(unsigned)}",
              file=sys.stderr)
    _print({"imported": imported, "alreadyPresent": len(rows) - imported})


MAX_IMPORT_BYTES = 512 << 20


def _read_import_file(source_text: str, store_path: Any) -> bytes:
    """The bytes of the regular file to import (at most MAX_IMPORT_BYTES), or a ConfigError saying why not."""
    import stat

    if "\x00" in source_text:
        raise ConfigError("The path of the file to import cannot contain a NUL character.")
    source = os.path.abspath(os.path.expanduser(source_text))
    try:
        info = os.stat(source)
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"No file to import at {source}.") from None
    except OSError as exc:
        raise ConfigError(f"The file to import, {source}, cannot be read ({exc.strerror}).") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"No file to import at {source} (it is not a regular file).")
    try:
        store = os.stat(store_path)
        if (store.st_dev, store.st_ino) == (info.st_dev, info.st_ino):
            raise ConfigError("--from and --path name the same file: import into a new store path.")
    except OSError:
        pass  # no store yet
    if info.st_size > MAX_IMPORT_BYTES:
        raise ConfigError(f"The file to import is larger than {MAX_IMPORT_BYTES >> 20} MiB: not a wallet file.")
    try:
        with open(source, "rb") as handle:
            return handle.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"The file to import, {source}, cannot be read ({exc.strerror}).") from None


def _legacy_password(ctx: Context) -> str:
    """TATUM_KMS_LEGACY_PASSWORD, else a prompt on a terminal (empty: the store's), else the store's password."""
    if ctx.env.get("TATUM_KMS_LEGACY_PASSWORD"):
        return ctx.env["TATUM_KMS_LEGACY_PASSWORD"]
    if ctx.input.interactive:
        import getpass

        typed = getpass.getpass("Password of the original wallet.dat (Enter: same as this store's): ",
                                stream=sys.stderr)
        if typed:
            return typed
    return ctx.password()


def cmd_daemon(ctx: Context) -> None:
    """Unlock once (failing fast on a wrong password or PIN), then poll, approve, sign and broadcast."""
    from pathlib import Path

    import chains
    from kms.audit import KEY_PURPOSE, AuditLog, default_path
    from kms.daemon import Daemon, DaemonOptions
    from kms.eventlog import EventLog
    from kms.metrics import from_setting, token_session
    from kms.store import daemon_lock
    from kms.tatum import TatumClient

    opts = ctx.opts
    if not opts.testnet and not opts.externalUrl:
        raise ConfigError("--externalUrl is required on mainnet (the four-eye approval server).")
    api_key = ctx.env.get("TATUM_API_KEY")
    if not api_key:
        raise ConfigError("Set TATUM_API_KEY (or --apiKey) to poll the Tatum API.")
    # An unknown chain fails now, before the password is asked for, not on every cycle.
    codes = tuple(chains.check(c.strip()) for c in opts.chain.split(",") if c.strip()) if opts.chain else chains.CODES
    if (opts.wallets or opts.transactionIds) and not opts.runOnce:
        raise ConfigError("--wallets and --transactionIds work with --runOnce only.")
    options = DaemonOptions(
        testnet=ctx.testnet,
        chains=codes,
        period=opts.period,
        external_url=opts.externalUrl.rstrip("/") if opts.externalUrl else None,
        external_url_method=opts.externalUrlMethod,
        approval_timeout=opts.approvalTimeout,
        run_once=opts.runOnce,
        wallets=_csv(opts.wallets),
        transaction_ids=frozenset(_csv(opts.transactionIds)) if opts.transactionIds else None,
        concurrency=_concurrency(opts.concurrency or ctx.env.get("TATUM_KMS_CONCURRENCY") or "32"),
    )
    log = EventLog(sys.stdout, opts.logFormat, secrets=[api_key])
    # Served from before the unlock, so /healthz says "locked" while the password or token is awaited.
    metrics = from_setting(opts.metrics or ctx.env.get("TATUM_KMS_METRICS"), opts.period, codes, log.redact)
    if metrics.serving:
        host, port = metrics.address
        log.event("metrics", f"/metrics and /healthz on http://{f'[{host}]' if ':' in host else host}:{port}")
    try:
        # Unlock first: Argon2id's 64 MiB peak then adds to a small process. One daemon per store: a second refuses.
        with ctx.open_store() as store, daemon_lock(store.path):
            for code in codes:
                chains.get(code)  # load the signers once, outside the first cycle
            log.add_secret(ctx.password())
            log.add_secret(ctx._token_pin)
            audit = AuditLog(Path(opts.auditLog).expanduser() if opts.auditLog else default_path(store.path),
                             store.subkey(KEY_PURPOSE), redact=log.redact, on_entry=metrics.audited,
                             on_error=lambda message: log.event("audit-failed", message, level="error"))
            token = token_session(ctx.token(), store.header.token.key_id) if metrics.serving and store.header.token \
                else None
            metrics.token_check(token.check if token else None)
            log.event("audit", f"decisions go to {audit.path} (after entry #{audit.seq})")
            metrics.store_unlocked(True)
            client = TatumClient(api_key, ctx.env.get("TATUM_API_URL"), deadline=opts.requestTimeout,
                                 max_response_bytes=opts.maxResponseMiB * 2**20)
            log.capture_library_warnings()
            daemon = Daemon(options, store, client, log, env=ctx.env, metrics=metrics, audit=audit)
            daemon.install_signal_handlers()
            try:
                daemon.run()
            finally:
                metrics.store_unlocked(False)
                client.close()
                audit.close()
                if token:
                    token.close()
    finally:
        metrics.close()


def cmd_audit(ctx: Context) -> None:
    """`audit verify [FILE]`: unlock the store, then check every line of the daemon's audit log."""
    from pathlib import Path

    from kms import audit

    action = ctx.arg(0, "verify")
    if action != "verify":
        raise ConfigError(f"Unknown audit action '{action}': use `audit verify [FILE]`.")
    given = ctx.opts.args[1] if len(ctx.opts.args) > 1 else ctx.opts.auditLog
    path = Path(given).expanduser() if given else audit.default_path(ctx.path())
    if not path.is_file():
        raise ConfigError(f"No audit log at {path}.")
    with ctx.open_store() as store:
        key = store.subkey(audit.KEY_PURPOSE)
    report = audit.verify(path, key)
    _print(report.to_json(path))
    if report.warning:
        print(f"warning: {report.warning}", file=sys.stderr)


def _store_info(path: Any) -> dict[str, Any]:
    """What checkconfig and report say about the store file, readable without the password."""
    from kms.store import file_kind, read_header

    kind = file_kind(path)
    if kind == "missing":
        return {"exists": False}
    if kind == "legacy":
        return {"exists": True, "format": "the original's wallet.dat: migrate it with tatum-kms import --from"}
    return {"exists": True, **read_header(path).describe()}


def cmd_checkconfig(ctx: Context) -> None:
    """Print the settings this process sees, secrets masked as the original masks them."""
    from kms.settings_report import check_config_text
    from kms.unlock import source_from_flags

    path = ctx.path()
    source = source_from_flags(ctx.opts.aws, ctx.opts.azure, ctx.opts.vgs)
    print(check_config_text(ctx.env, path=path, env_file=ctx.env_file, source=source, store_info=_store_info(path)))


def cmd_report(ctx: Context) -> None:
    """Report on the system and on the given wallets (their kind and field checks, never their secrets)."""
    from kms.settings_report import report
    from kms.unlock import source_from_flags

    path = ctx.path()
    info = _store_info(path)
    ids = list(ctx.opts.args)
    wallets: dict[str, Any] = dict.fromkeys(ids)
    if ids and info["exists"]:
        with ctx.open_store() as store:
            wallets = {signature_id: store.find(signature_id) for signature_id in ids}
    source = source_from_flags(ctx.opts.aws, ctx.opts.azure, ctx.opts.vgs)
    _print(report(ctx.env, path=path, source=source, store_info=info, wallets=wallets))


def _concurrency(text: str) -> int:
    """--concurrency / TATUM_KMS_CONCURRENCY: approvals and wallets handled at once, 1 to 256."""
    return _ascii_int(text, "--concurrency (or TATUM_KMS_CONCURRENCY)", 1, 256)


def _csv(text: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in text.split(",") if v.strip()) if text else None


COMMANDS: dict[str, Callable[[Context], None]] = {
    "generatewallet": cmd_generatewallet,
    "generatemanagedwallet": cmd_generatemanagedwallet,
    "storemanagedwallet": cmd_storemanagedwallet,
    "storemanagedprivatekey": cmd_storemanagedprivatekey,
    "generatemanagedprivatekeybatch": cmd_generatemanagedprivatekeybatch,
    "getmanagedwallet": cmd_getmanagedwallet,
    "getprivatekey": cmd_getprivatekey,
    "getaddress": cmd_getaddress,
    "removewallet": cmd_removewallet,
    "export": cmd_export,
    "hsm": cmd_hsm,
    "changepassword": cmd_changepassword,
    "daemon": cmd_daemon,
    "import": cmd_import,
    "checkconfig": cmd_checkconfig,
    "report": cmd_report,
    "audit": cmd_audit,
}


def _fail(message: str) -> None:
    """One line on stderr, JSON as the original prints its errors."""
    print(json.dumps({"error": " ".join(message.split())}), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox"]:
        from kms.sandbox import main as sandbox_main

        return sandbox_main(argv[1:])
    try:
        opts, unknown = _parser().parse_known_intermixed_args(argv)
    except ConfigError as exc:
        _fail(str(exc))
        return 2
    if opts.version:
        print(__version__)
        return 0
    if opts.help or not opts.command:
        print(HELP)
        return 0
    os.umask(0o077)
    _ignore_file_size_signal()
    from chains.base import TatumKmsError

    try:
        if unknown:
            raise ConfigError(f"Unknown option {unknown[0]}: see tatum-kms --help.")
        handler = COMMANDS.get(opts.command)
        if handler is None:
            raise ConfigError("Unsupported command. Use tatum-kms --help for details.")
        from kms.envfile import load_env_file

        env_file = load_env_file(opts.envFile, os.environ)
        if opts.apiKey:
            os.environ["TATUM_API_KEY"] = opts.apiKey
        handler(Context(opts, dict(os.environ), str(env_file) if env_file else None))
    except TatumKmsError as exc:
        _fail(str(exc))
        return 1
    except KeyboardInterrupt:
        _fail("Interrupted.")
        return 130
    except BrokenPipeError:
        _detach_stdout()
        _fail("Standard output was closed before everything was written.")
        return 1
    except MemoryError:
        _fail("Out of memory.")
        return 1
    except RecursionError:
        _fail("The input is nested too deeply.")
        return 1
    except OSError as exc:
        where = f" ({exc.filename})" if isinstance(exc.filename, str) else ""
        _fail(f"{exc.strerror or type(exc).__name__}{where}.")
        return 1
    except Exception as exc:  # the last net: a bug, still one line, and no text that could hold a secret
        _fail(f"Unexpected internal error ({type(exc).__name__}): this is a bug in tatum-kms, please report it.")
        return 70
    return 0


def _ignore_file_size_signal() -> None:
    """A write past the file size limit (ulimit -f) then fails with EFBIG, reported, instead of killing us."""
    import signal

    try:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    except (AttributeError, ValueError):  # no such signal here, or not the main thread
        pass


def _detach_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of a closed pipe says nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
