"""What each `tatum-kms` command does, over the store and the chains; `kms.cli` parses the command line.

Only json, os and sys are imported here at start-up: the store, crypto and chain libraries load inside the
command that needs them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from kms.errors import ConfigError

if TYPE_CHECKING:
    from chains.base import Chain

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

    def __init__(self, opts: SimpleNamespace, env: dict[str, str], env_file: str | None = None) -> None:
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

    def index(self) -> int:
        """The INDEX argument: ASCII digits only, 0 to 2^31-1 (the last non-hardened BIP32 index)."""
        return _ascii_int(self.opts.index, "Index", 0, MAX_INDEX)

    def chain(self) -> Chain:
        """The chain named by the CHAIN argument (any case)."""
        import chains

        return chains.get(self.opts.code)

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
    count = _ascii_int(ctx.opts.count, "Count", 1, MAX_BATCH)
    with ctx.open_store(create=True) as store:
        store.require_writable()
        generate_batch(store, chain, ctx.testnet, count, sys.stdout, sys.stderr)


def cmd_getmanagedwallet(ctx: Context) -> None:
    signature_id = ctx.opts.signature_id
    with ctx.open_store() as store:
        _print(store.get(signature_id))


def cmd_getprivatekey(ctx: Context) -> None:
    import chains

    signature_id, index = ctx.opts.signature_id, ctx.index()
    with ctx.open_store() as store:
        wallet = store.get(signature_id)
    _print({"privateKey": chains.get(wallet["chain"]).private_key(wallet, index, wallet["testnet"])})


def cmd_getaddress(ctx: Context) -> None:
    import chains

    signature_id, index = ctx.opts.signature_id, ctx.index()
    with ctx.open_store() as store:
        wallet = store.get(signature_id)
    _print({"address": chains.get(wallet["chain"]).address(wallet, index, wallet["testnet"])})


def cmd_removewallet(ctx: Context) -> None:
    with ctx.open_store() as store:
        store.remove(ctx.opts.signature_id)


def cmd_export(ctx: Context) -> None:
    with ctx.open_store() as store:
        _print(store.export())


def _token_settings(ctx: Context) -> Any:
    settings = ctx.token()
    if settings is None:
        raise ConfigError("Set TATUM_KMS_PKCS11_MODULE and TATUM_KMS_PKCS11_TOKEN (or --pkcs11Module/--pkcs11Token).")
    return settings


def cmd_hsm_init(ctx: Context) -> None:
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


def cmd_hsm_rotate(ctx: Context) -> None:
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

    source_text = ctx.opts.source or ctx.opts.file
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
            client = TatumClient(api_key, ctx.env.get("TATUM_API_URL"), deadline=opts.requestTimeout,
                                 max_response_bytes=opts.maxResponseMiB * 2**20)
            try:
                client.open()
                if options.external_url:
                    from kms import approval

                    approval.prepare()
                log.capture_library_warnings()
                daemon = Daemon(options, store, client, log, env=ctx.env, metrics=metrics, audit=audit)
                daemon.install_signal_handlers()
                metrics.store_unlocked(True)  # healthy from here: unlocked, clients made, SIGTERM handled
                daemon.run()
            finally:
                metrics.store_unlocked(False)
                client.close()
                if options.external_url:
                    from kms import approval

                    approval.close()
                audit.close()
                if token:
                    token.close()
    finally:
        metrics.close()


def cmd_audit_verify(ctx: Context) -> None:
    """`audit verify [FILE]`: unlock the store, then check every line of the daemon's audit log."""
    from pathlib import Path

    from kms import audit

    given = ctx.opts.file or ctx.opts.auditLog
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
    ids = list(ctx.opts.signature_ids)
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




def cmd_sandbox(ctx: Context) -> None:
    """Serve a local Tatum-compatible API until SIGTERM or SIGINT."""
    from kms.sandbox import main

    opts = ctx.opts
    main(port=opts.port, execute=not opts.no_execute, testnet=not opts.mainnet, verbose=not opts.quiet,
         latency_ms=opts.latency_ms)


#: Command path -> what it does; `kms.cli` parses the command line into one of these.
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
    "import": cmd_import,
    "changepassword": cmd_changepassword,
    "daemon": cmd_daemon,
    "hsm init": cmd_hsm_init,
    "hsm rotate": cmd_hsm_rotate,
    "audit verify": cmd_audit_verify,
    "report": cmd_report,
    "checkconfig": cmd_checkconfig,
    "sandbox": cmd_sandbox,
}
