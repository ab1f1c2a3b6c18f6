"""Loading a .env file (`--envFile`, else ~/.tatumrc/.env) into the environment, as the original does with dotenv.

The syntax is that of dotenv 16 (the original's loader), so a file that worked there gives the same
values here: `KEY=VALUE` or `KEY: VALUE`, an optional `export ` prefix, `#` comments, values in single,
double or back quotes (which may span lines; only double quotes expand `\\n` and `\\r`), unquoted
values ending at `#` or the end of the line. Lines that are not assignments are ignored, as dotenv
ignores them. Variables already in the environment win over the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from pathlib import Path

from kms.errors import ConfigError

_QUOTES = "'\"`"

# One assignment, searched from each line start. A quoted value runs to its closing quote (a quote
# preceded by a backslash does not close it) and may span lines; an unquoted one stops at '#' or
# the end of the line. Whatever follows the value on its line may only be blanks and a comment.
_ASSIGNMENT = re.compile(
    r"""
    ^\s*
    (?:export\s+)?
    (?P<key>[A-Za-z0-9_.-]+)
    (?:\s*=|:\s)
    (?P<value>
        \s*'(?:\\'|[^'])*'
      | \s*"(?:\\"|[^"])*"
      | \s*`(?:\\`|[^`])*`
      | [^#\n]+
    )?
    [^\S\n]*(?:\#[^\n]*)?$
    """,
    re.MULTILINE | re.VERBOSE,
)


def parse_env(text: str) -> dict[str, str]:
    """The variables a .env text assigns; a key assigned twice keeps its last value."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    variables: dict[str, str] = {}
    for match in _ASSIGNMENT.finditer(text):
        value = (match.group("value") or "").strip()
        quote = value[:1]
        if len(value) >= 2 and quote in _QUOTES and value.endswith(quote):
            value = value[1:-1]
            if quote == '"':
                value = value.replace("\\n", "\n").replace("\\r", "\r")
        variables[match.group("key")] = value
    return variables


def default_env_file(environ: MutableMapping[str, str]) -> Path:
    """~/.tatumrc/.env, with ~ taken from HOME in `environ` when it is set."""
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".tatumrc" / ".env"


def load_env_file(path: str | None, environ: MutableMapping[str, str]) -> str | None:
    """Set the variables of `path` (or ~/.tatumrc/.env if it exists) that `environ` lacks; return the file read.

    A `path` given with --envFile that does not exist is a ConfigError; a missing default file is not.
    """
    if path:
        chosen = Path(os.path.expanduser(path))  # "~nosuchuser/x" stays as it is (Path.expanduser raises)
        if not chosen.is_file():
            raise ConfigError(f"--envFile {path}: no such file.")
    else:
        chosen = default_env_file(environ)
        if not chosen.is_file():
            return None
    try:
        text = chosen.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError(f"Cannot read the environment file {chosen}: {reason}.") from None
    for key, value in parse_env(text).items():
        if key not in environ:
            environ[key] = value
    return str(chosen)
