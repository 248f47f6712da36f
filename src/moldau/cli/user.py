"""``moldau user …``: create, list and delete SCRAM users.

Two ways to reach the credentials, as Kafka has:

- ``--data-dir DIR`` (offline): write straight into a *stopped* broker's security metadata
  (``DIR/__security_metadata.json``), like ``kafka-storage format --add-scram``. This is how
  the first user of a SASL-only broker is made: nobody can log in to create it online. A
  broker that is running keeps its own copy and will not see (and may later overwrite) the
  change, so stop it first. This is for single-node brokers: a cluster keeps its credentials
  in etcd, so create users there online (through any broker).
- otherwise (online): DescribeUserScramCredentials / AlterUserScramCredentials through
  confluent-kafka's AdminClient at ``--bootstrap``, with the client's security settings from
  ``--command-config`` (a properties file, e.g. ``security.protocol=SASL_SSL``,
  ``sasl.mechanism``, ``sasl.username``, ``sasl.password``).

The password comes from ``--password``, ``--password-file`` (its first line), standard input
when it is not a terminal (first line), or a hidden prompt asked twice. It is never printed.
The credential is salted and hashed here (offline) or by the client library (online); the
password itself is stored nowhere.

Only the CLI's public layers are used: the offline path writes the store file through
``moldau.cluster.security_store`` and derives the credential with the same function the
broker uses, so the broker reads exactly what it would have written itself.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, no __all__
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from rich.table import Table

from moldau.cli.common import (
    BOOTSTRAP_ENV,
    DEFAULT_BOOTSTRAP,
    DEFAULT_TIMEOUT_MS,
    CliError,
    FormatOption,
    OutputFormat,
    TimeoutOption,
    admin_client,
    print_json,
    stdout_console,
    wait,
)

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
DEFAULT_MECHANISM = "SCRAM-SHA-512"
DEFAULT_ITERATIONS = 8192

app = typer.Typer(help="Create, list and delete SCRAM users.", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="User name.", show_default=False)]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Work offline on this stopped broker's data directory instead of --bootstrap.",
        file_okay=False,
    ),
]
BootstrapOption = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        "-b",
        envvar=BOOTSTRAP_ENV,
        help=f"Broker address(es), HOST:PORT[,...] [default: {DEFAULT_BOOTSTRAP}].",
        show_envvar=True,
    ),
]
CommandConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--command-config",
        help="Client properties file (security.protocol, sasl.*, ssl.*) for --bootstrap.",
        dir_okay=False,
    ),
]


def _mechanism(value: str) -> str:
    name = value.strip().upper()
    if name not in SCRAM_MECHANISMS:
        raise CliError(
            f"unknown SCRAM mechanism '{value}': expected {' or '.join(SCRAM_MECHANISMS)}", 2
        )
    return name


def _offline_store(data_dir: Path) -> Any:
    from moldau.cluster.security_store import LocalSecurityStore

    if data_dir.exists() and not data_dir.is_dir():
        raise CliError(f"--data-dir '{data_dir}' is not a directory", 2)
    try:
        return LocalSecurityStore(data_dir)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the security metadata in '{data_dir}': {exc}") from None


def _check_mode(data_dir: Path | None, bootstrap: str | None) -> None:
    if data_dir is not None and bootstrap is not None:
        raise CliError("give either --data-dir (offline) or --bootstrap (online), not both", 2)


class _Online:
    """An AdminClient for the life of one command."""

    def __init__(self, bootstrap: str | None, command_config: Path | None, timeout_ms: int):
        self.timeout_ms = timeout_ms
        self.admin = admin_client(bootstrap, command_config, timeout_ms)

    def describe(self) -> dict[str, list[tuple[str, int]]]:
        # users=None: a single future for every user
        future: Any = self.admin.describe_user_scram_credentials(
            request_timeout=self.timeout_ms / 1000
        )
        found = wait(future, self.timeout_ms, "listing SCRAM users")
        return {
            user: sorted(
                (info.mechanism.name.replace("_", "-"), info.iterations)
                for info in description.scram_credential_infos
            )
            for user, description in sorted(found.items())
        }

    def alter(self, alterations: list[Any], doing: str) -> None:
        futures = self.admin.alter_user_scram_credentials(
            alterations, request_timeout=self.timeout_ms / 1000
        )
        for future in futures.values():
            wait(future, self.timeout_ms, doing)


def _read_password(password: str | None, password_file: Path | None) -> str:
    if password is not None and password_file is not None:
        raise CliError("give either --password or --password-file, not both", 2)
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(
                f"cannot read password file '{password_file}': {exc.strerror or exc}"
            ) from None
        password = text.splitlines()[0] if text else ""
    elif password is None:
        if sys.stdin is None or not sys.stdin.isatty():
            line = sys.stdin.readline() if sys.stdin is not None else ""
            password = line.rstrip("\r\n")
        else:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Password again: ") != password:
                raise CliError("the passwords do not match", 2)
    if not password:
        raise CliError("the password must not be empty", 2)
    return password


@app.command("create")
def create(
    name: NameArgument,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            help="The password (visible to other local users: prefer "
            "--password-file or the prompt).",
            show_default=False,
        ),
    ] = None,
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file", help="Read the password from this file's first line.", dir_okay=False
        ),
    ] = None,
    mechanism: Annotated[
        str, typer.Option("--mechanism", "-m", help="SCRAM-SHA-256 or SCRAM-SHA-512.")
    ] = DEFAULT_MECHANISM,
    iterations: Annotated[
        int,
        typer.Option(
            "--iterations", min=MIN_ITERATIONS, max=MAX_ITERATIONS, help="PBKDF2 iterations."
        ),
    ] = DEFAULT_ITERATIONS,
    data_dir: DataDirOption = None,
    bootstrap: BootstrapOption = None,
    command_config: CommandConfigOption = None,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Create a SCRAM user, or replace its password for that mechanism."""
    _check_mode(data_dir, bootstrap)
    mechanism = _mechanism(mechanism)
    if not name:
        raise CliError("the user name must not be empty", 2)
    secret = _read_password(password, password_file)
    if data_dir is not None:
        from moldau.broker.auth.scram import make_scram_credential
        from moldau.cluster.security_state import encode, scram_key

        store = _offline_store(data_dir)
        credential = make_scram_credential(secret, mechanism, iterations)
        try:
            store.apply_now({scram_key(name, mechanism): encode(credential.to_json())}, ())
        except OSError as exc:
            raise CliError(
                f"cannot write the security metadata in '{data_dir}': {exc.strerror or exc}"
            ) from None
    else:
        online = _Online(bootstrap, command_config, timeout_ms)
        info = ScramCredentialInfo(ScramMechanism[mechanism.replace("-", "_")], iterations)
        upsertion = UserScramCredentialUpsertion(name, info, secret.encode("utf-8"))
        online.alter([upsertion], f"creating SCRAM user '{name}'")
    if output is OutputFormat.json:
        print_json({"user": name, "mechanism": mechanism, "iterations": iterations})
    else:
        stdout_console().print(
            f"Created {mechanism} credentials for user {name} ({iterations} iterations)."
        )


@app.command("list")
def list_(
    data_dir: DataDirOption = None,
    bootstrap: BootstrapOption = None,
    command_config: CommandConfigOption = None,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """List SCRAM users with their mechanisms and iteration counts."""
    _check_mode(data_dir, bootstrap)
    if data_dir is not None:
        scram = _offline_store(data_dir).image.scram
        users = {
            user: sorted((m, c.iterations) for m, c in mechanisms.items())
            for user, mechanisms in sorted(scram.items())
            if mechanisms
        }
    else:
        users = _Online(bootstrap, command_config, timeout_ms).describe()
    if output is OutputFormat.json:
        print_json(
            [
                {"user": user, "mechanism": mechanism, "iterations": count}
                for user, infos in users.items()
                for mechanism, count in infos
            ]
        )
        return
    table = Table(box=None, pad_edge=False)
    for column in ("USER", "MECHANISM", "ITERATIONS"):
        table.add_column(column)
    for user, infos in users.items():
        for mechanism, count in infos:
            table.add_row(user, mechanism, str(count))
    stdout_console().print(table)


@app.command("delete")
def delete(
    name: NameArgument,
    mechanism: Annotated[
        str | None,
        typer.Option("--mechanism", "-m", help="Delete only this mechanism [all of them]."),
    ] = None,
    data_dir: DataDirOption = None,
    bootstrap: BootstrapOption = None,
    command_config: CommandConfigOption = None,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Delete a user's SCRAM credentials (every mechanism unless --mechanism)."""
    _check_mode(data_dir, bootstrap)
    wanted = _mechanism(mechanism) if mechanism is not None else None
    if data_dir is not None:
        from moldau.cluster.security_state import scram_key

        store = _offline_store(data_dir)
        have = sorted(store.image.scram.get(name, {}))
        mechanisms = [m for m in have if wanted is None or m == wanted]
        if not mechanisms:
            raise CliError(_no_credential(name, wanted))
        store.apply_now({}, [scram_key(name, m) for m in mechanisms])
    else:
        online = _Online(bootstrap, command_config, timeout_ms)
        if wanted is not None:
            mechanisms = [wanted]
        else:
            mechanisms = [m for m, _ in online.describe().get(name, [])]
            if not mechanisms:
                raise CliError(_no_credential(name, None))
        for m in mechanisms:  # one per request: Kafka refuses two changes of one user
            online.alter(
                [UserScramCredentialDeletion(name, ScramMechanism[m.replace("-", "_")])],
                f"deleting the {m} credentials of user '{name}'",
            )
    if output is OutputFormat.json:
        print_json({"user": name, "deleted": mechanisms})
    else:
        stdout_console().print(f"Deleted {', '.join(mechanisms)} credentials of user {name}.")


def _no_credential(name: str, mechanism: str | None) -> str:
    what = f"{mechanism} credentials" if mechanism else "SCRAM credentials"
    return f"user '{name}' has no {what}"
