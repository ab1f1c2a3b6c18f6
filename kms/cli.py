"""The `tatum-kms` command line on click: the original's commands, flags (camelCase and kebab-case) and JSON errors.

Parsing only builds an `Invocation`; `main` then runs it from `kms.commands` under the error contract (one JSON
line on stderr, a non-zero exit). Only click, json, os and sys load before that, so `--help` stays instant.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import click

from kms import __version__


@dataclass(frozen=True)
class Invocation:
    """A parsed command line: the command's path (`"hsm init"`) and every option and argument by name."""

    command: str
    opts: SimpleNamespace


# -- option types -------------------------------------------------------------------------------


class Number(click.ParamType):
    """A plain decimal number (ASCII digits; no sign, exponent, nan or inf) in a range."""

    name = "number"

    def __init__(self, unit: str, low: float, high: float, *, low_open: bool = False, integer: bool = False):
        self.shape = r"[0-9]{1,9}" if integer else r"[0-9]{1,9}(?:\.[0-9]{0,9})?|\.[0-9]{1,9}"
        self.low, self.high, self.low_open, self.integer = low, high, low_open, integer
        bounds = f"more than {low:g} and at most {high:g}" if low_open else f"from {low:g} to {high:g}"
        self.rule = f"must be {'a whole number of' if integer else 'a number of'} {unit}, {bounds}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):  # a default
            return value
        import re

        number = float(value) if re.fullmatch(self.shape, value.strip()) else None
        if number is None or number > self.high or number < self.low or (self.low_open and number == self.low):
            self.fail(f"{self.rule}, got {json.dumps(value)}", param, ctx)
        return int(number) if self.integer else number


def _chain_codes(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of a CHAIN argument: the registry's codes (loads the registry, not the chains)."""
    import chains

    return [code for code in chains.CODES if code.startswith(incomplete.upper())]


def _flag(name: str, kebab: str | None = None, **kwargs: Any) -> Callable[[Any], Any]:
    """An option under the original's camelCase `--name` and, when it differs, its kebab-case spelling."""
    spellings = [f"--{name}"] + ([f"--{kebab}"] if kebab and kebab != name else [])
    return click.option(*spellings, name, **kwargs)


def _apply(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(function: Any) -> Any:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


#: Options every command takes (the original accepts them anywhere): network, store, password source, token.
STORE_OPTIONS = _apply(
    _flag("testnet", is_flag=True, help="Testnet wallets and networks (mainnet by default)."),
    _flag("path", metavar="FILE", help="Wallet store (default ~/.tatumrc/wallet.dat)."),
    _flag("envFile", "env-file", metavar="FILE", help="Read variables from this .env file (default ~/.tatumrc/.env)."),
    _flag("aws", is_flag=True, help="Read the store password from AWS Secrets Manager."),
    _flag("azure", is_flag=True, help="Read the store password from Azure Key Vault."),
    _flag("vgs", is_flag=True, help="Read the store password from VGS."),
    _flag("pkcs11Module", "pkcs11-module", metavar="LIB.so", help="PKCS#11 module (or TATUM_KMS_PKCS11_MODULE)."),
    _flag("pkcs11Token", "pkcs11-token", metavar="LABEL",
          help="Token label (or TATUM_KMS_PKCS11_TOKEN); the PIN comes from TATUM_KMS_PKCS11_PIN or a hidden "
               "prompt, never from a flag."),
    _flag("pkcs11Key", "pkcs11-key", metavar="LABEL",
          help="Key label on the token (or TATUM_KMS_PKCS11_KEY; default tatum-kms-kek)."),
)

API_KEY = _flag("apiKey", "api-key", metavar="KEY",
                help="Tatum API key (prefer TATUM_API_KEY: flags are visible in the process list).")
AUDIT_LOG = _flag("auditLog", "audit-log", metavar="FILE",
                  help="The audit log of every decision (default audit.log beside the store).")

DAEMON_OPTIONS = _apply(
    API_KEY,
    _flag("period", metavar="SECONDS", type=Number("seconds", 0.1, 86400), default=5.0, show_default=True,
          help="Seconds between polls, 0.1 to 86400."),
    _flag("chain", metavar="A,B", help="Chains to poll (default all)."),
    _flag("externalUrl", "external-url", metavar="URL",
          help="Approval server: each transaction is signed only if it answers 2xx to URL/<id>. Required on "
               "mainnet."),
    _flag("externalUrlMethod", "external-url-method", metavar="GET|POST",
          type=click.Choice(["GET", "POST"], case_sensitive=False),
          default="GET", show_default=True,
          help="How to call the approval server (POST sends the transaction)."),
    _flag("approvalTimeout", "approval-timeout", metavar="SECONDS",
          type=Number("seconds", 0, 600, low_open=True), default=10.0,
          show_default=True, help="Seconds the approval server has to answer in full, up to 600."),
    _flag("concurrency", metavar="N",
          help="Approval checks and wallets handled at once, 1 to 256 (default 32; TATUM_KMS_CONCURRENCY)."),
    _flag("requestTimeout", "request-timeout", metavar="SECONDS",
          type=Number("seconds", 0, 600, low_open=True), default=60.0,
          show_default=True,
          help="Seconds one call to the Tatum API or a node may take in all, from connecting to the last byte, "
               "retries included; up to 600."),
    _flag("maxResponseMiB", "max-response-mib", metavar="MIB", type=Number("MiB", 1, 1024, integer=True), default=16,
          show_default=True,
          help="Largest response taken from the Tatum API, a node or the approval server, 1 to 1024 MiB."),
    _flag("runOnce", "run-once", is_flag=True, help="One poll, then exit."),
    _flag("wallets", metavar="ID,ID", help="With --runOnce: poll for these signature ids only."),
    _flag("transactionIds", "transaction-ids", metavar="ID,ID",
          help="With --runOnce: sign only these pending transactions."),
    _flag("logFormat", "log-format", metavar="text|json", type=click.Choice(["text", "json"]), default="text",
          show_default=True,
          help="Daemon log lines as text or JSON."),
    _flag("metrics", metavar="HOST:PORT",
          help="Serve Prometheus /metrics and /healthz there (or TATUM_KMS_METRICS; off by default), e.g. "
               "127.0.0.1:9464."),
    AUDIT_LOG,
)

CHAIN = click.argument("code", metavar="CHAIN", shell_complete=_chain_codes)
SIGNATURE_ID = click.argument("signature_id", metavar="SIGNATURE_ID")
#: An INDEX or COUNT may be written "-1": taken as an argument (and refused by its own check), not an option.
NUMERIC_ARGUMENTS = {"ignore_unknown_options": True}


# -- the command tree ---------------------------------------------------------------------------


SECTIONS = (
    ("Wallet commands", ("generatewallet", "generatemanagedwallet", "storemanagedwallet", "storemanagedprivatekey",
                         "generatemanagedprivatekeybatch", "getmanagedwallet", "getprivatekey", "getaddress",
                         "removewallet", "export", "import", "changepassword")),
    ("Daemon", ("daemon", "sandbox")),
    ("Hardware token (PKCS#11)", ("hsm",)),
    ("Audit", ("audit",)),
    ("Debugging", ("report", "checkconfig")),
)

EPILOG = """Secrets are never taken from flags: the password comes from TATUM_KMS_PASSWORD, --aws, --azure, --vgs or a
hidden prompt; a mnemonic or key to store from a hidden prompt, or from standard input (one line each, password
first) when it is not a terminal.

Every camelCase flag is also accepted in kebab case (--externalUrl or --external-url). `tatum-kms COMMAND --help`
shows a command's own options. Shell completion: eval "$(_TATUM_KMS_COMPLETE=bash_source tatum-kms)" (zsh_source,
fish_source for zsh and fish)."""


class Group(click.Group):
    """A command group that lists its commands in sections and refuses an unknown one without echoing it."""

    def __init__(self, *args: Any, sections: tuple[tuple[str, tuple[str, ...]], ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sections = sections

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            raise click.UsageError(f"Unsupported command. Use {ctx.command_path} --help for details.", ctx)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if not self.sections:
            return super().format_commands(ctx, formatter)
        for title, names in self.sections:
            rows = []
            for name in names:
                sub = self.commands[name]
                if isinstance(sub, click.Group):  # `hsm init`, `hsm rotate`: each on a line of its own
                    rows += [(f"{name} {n}", c.get_short_help_str(limit=200)) for n, c in sub.commands.items()]
                else:
                    rows.append((name, sub.get_short_help_str(limit=200)))
            with formatter.section(title):
                formatter.write_dl(rows)


def _invocation(command: str) -> Callable[..., Invocation]:
    return lambda **params: Invocation(command, SimpleNamespace(**params))


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(__version__)
        ctx.exit(0)


SETTINGS = {"help_option_names": ["-h", "--help"], "terminal_width": 110, "max_content_width": 110}


@click.group(cls=Group, sections=SECTIONS, context_settings=SETTINGS, epilog=EPILOG,
             help=f"tatum-kms {__version__}: keys stay on this machine; pending Tatum transactions are signed here.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the version and exit.")
def cli() -> None:
    """The tatum-kms command group."""


def command(name: str, help_text: str, *decorators: Callable[[Any], Any], group: click.Group = cli,
            **settings: Any) -> None:
    """Register `name` under `group`: its help, arguments and options; it parses into an `Invocation`."""
    path = name if group is cli else f"{group.name} {name}"
    function = _apply(*decorators)(_invocation(path))
    group.command(name, help=help_text, context_settings=settings or None)(function)


command("generatewallet", "Print a new wallet for CHAIN (not stored).", CHAIN, STORE_OPTIONS)
command("generatemanagedwallet", "Generate a wallet for CHAIN and keep it in the wallet store.", CHAIN,
        STORE_OPTIONS)
command("storemanagedwallet", "Keep an existing mnemonic (asked for) in the wallet store.", CHAIN, STORE_OPTIONS)
command("storemanagedprivatekey", "Keep an existing private key (asked for) in the wallet store.", CHAIN,
        STORE_OPTIONS)
command("generatemanagedprivatekeybatch", "Generate and keep COUNT private keys; one JSON line each.", CHAIN,
        click.argument("count", metavar="COUNT"), STORE_OPTIONS, **NUMERIC_ARGUMENTS)
command("getmanagedwallet", "Print a stored wallet.", SIGNATURE_ID, STORE_OPTIONS)
command("getprivatekey", "Print the private key at INDEX of a stored wallet.", SIGNATURE_ID,
        click.argument("index", metavar="INDEX"), STORE_OPTIONS, **NUMERIC_ARGUMENTS)
command("getaddress", "Print the address at INDEX of a stored wallet.", SIGNATURE_ID,
        click.argument("index", metavar="INDEX"), STORE_OPTIONS, **NUMERIC_ARGUMENTS)
command("removewallet", "Delete a wallet from the store.", SIGNATURE_ID, STORE_OPTIONS)
command("export", "Print every stored wallet.", STORE_OPTIONS)
command("import", "Import the original's wallet.dat or an `export` JSON, keeping every signature id.",
        click.argument("file", metavar="[FILE]", required=False),
        click.option("--from", "source", metavar="FILE", help="The file to import (or give it as FILE)."),
        STORE_OPTIONS)
command("changepassword", "Rewrap the store's data key under a new password (TATUM_KMS_NEW_PASSWORD or asked for).",
        STORE_OPTIONS)
command("daemon", "Poll Tatum, check each transaction with --externalUrl, sign, broadcast.", STORE_OPTIONS,
        DAEMON_OPTIONS)
command("report", "Report on the system and the given wallets (never their secrets).",
        click.argument("signature_ids", metavar="[SIGNATURE_ID]...", nargs=-1), API_KEY, STORE_OPTIONS)
command("checkconfig", "Show the settings tatum-kms sees (secrets masked).", API_KEY, STORE_OPTIONS)


command("sandbox", "Run a local Tatum-compatible API (demos and tests): its URL is the first line printed.",
        click.option("--port", type=click.IntRange(0, 65535), default=0,
                     help="Port on 127.0.0.1 (default: a free one)."),
        click.option("--no-execute", "no_execute", is_flag=True,
                     help="Broadcasts are decoded and their signatures checked, not executed."),
        click.option("--mainnet", is_flag=True,
                     help="Mainnet chain ids, tags and passphrases instead of the testnets'."),
        click.option("--quiet", is_flag=True, help="Do not log requests on stderr."),
        click.option("--latency-ms", "latency_ms", type=click.FloatRange(0, 10_000), default=0.0,
                     help="Delay every answer by this many milliseconds (benchmarks at internet latency)."))


@cli.group("hsm", cls=Group, no_args_is_help=False, context_settings=SETTINGS)
def _hsm() -> None:
    """Bind the wallet store to a key of its own on a PKCS#11 token."""


command("init", "Create the store bound to a key of its own on the token, or check that the token holds the "
        "store's key.", STORE_OPTIONS, group=_hsm)
command("rotate", "Move the store to a new token key (O(1) in wallets), then destroy the key it leaves.",
        STORE_OPTIONS, group=_hsm)


@cli.group("audit", cls=Group, no_args_is_help=False, context_settings=SETTINGS)
def _audit() -> None:
    """Check the daemon's audit log."""


command("verify", "Check the audit log FILE (default --auditLog, or audit.log beside the store): the first edited, "
        "inserted, reordered or removed line, or intact.", click.argument("file", metavar="[FILE]", required=False),
        AUDIT_LOG, STORE_OPTIONS, group=_audit)


# -- parsing and running ------------------------------------------------------------------------


def _value_options() -> set[str]:
    """Every spelling of an option that takes a value, for moving options written before the command."""
    names: set[str] = set()
    for group in (cli, _hsm, _audit):
        for sub in group.commands.values():
            for param in sub.params:
                if isinstance(param, click.Option) and not param.is_flag:
                    names.update(param.opts)
    return names


def _options_after_command(argv: list[str]) -> list[str]:
    """`tatum-kms --testnet generatewallet BTC` as `tatum-kms generatewallet BTC --testnet`: the original's parser
    takes options anywhere, click only after the command that declares them."""
    takes_value = _value_options()
    leading: list[str] = []
    rest = list(argv)
    while rest and rest[0].startswith("--") and rest[0] not in ("--help", "--version", "--"):
        token = rest.pop(0)
        leading.append(token)
        if token in takes_value and rest:
            leading.append(rest.pop(0))
    if not leading or not rest:
        return argv
    return [rest[0], *leading, *rest[1:]]


class Finished(Exception):
    """Parsing ended the run by itself (help or version printed): `code` is the exit code."""

    def __init__(self, code: int) -> None:
        self.code = code


def parse(argv: list[str]) -> Invocation:
    """The command line as an `Invocation`; click.UsageError when it is wrong, Finished after help or version."""
    result = cli.main(args=_options_after_command(argv), prog_name="tatum-kms", standalone_mode=False)
    if isinstance(result, Invocation):
        return result
    raise Finished(result if isinstance(result, int) else 0)


def _usage_message(exc: click.ClickException) -> str:
    """Click's message, with no argument values echoed (an extra argument could be a mistyped secret)."""
    message = exc.format_message()
    if message.startswith("Got unexpected extra argument"):
        message = "Unexpected extra arguments (not shown: they could hold a secret)."
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "tatum-kms"
    return f"{message.rstrip('.')}. See {where} --help."


def _fail(message: str) -> None:
    """One line on stderr, JSON as the original prints its errors."""
    print(json.dumps({"error": " ".join(message.split())}), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["--help"]
    try:
        invocation = parse(argv)
    except Finished as done:
        return done.code
    except click.ClickException as exc:
        _fail(_usage_message(exc))
        return exc.exit_code or 2
    except click.Abort:
        _fail("Interrupted.")
        return 130
    return run(invocation)


def run(invocation: Invocation) -> int:
    """Run a parsed command under the error contract: any failure is one JSON line on stderr and an exit code."""
    os.umask(0o077)
    _ignore_file_size_signal()
    from chains.base import TatumKmsError
    from kms.commands import COMMANDS, Context

    opts = invocation.opts
    try:
        from kms.envfile import load_env_file

        env_file = load_env_file(getattr(opts, "envFile", None), os.environ)
        if getattr(opts, "apiKey", None):
            os.environ["TATUM_API_KEY"] = opts.apiKey
        COMMANDS[invocation.command](Context(opts, dict(os.environ), str(env_file) if env_file else None))
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
