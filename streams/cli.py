"""The `esep` command line."""
from __future__ import annotations

import argparse
import importlib.metadata
import sys

from .settings import Settings, SettingsError


class CommandError(RuntimeError):
    """A command cannot go on; its message says what to do next (exit 1, no traceback)."""


def _topics(args, settings: Settings) -> int:
    from .topics import ensure_topics, topic_specs

    created = ensure_topics(settings, settings.resolve_broker())
    for spec in topic_specs(settings):
        state = "created" if spec.name in created else "exists"
        policy = "compact" if spec.compacted else "delete"
        print(f"{spec.name:<32} {spec.partitions:>3} partitions  {policy:<8} {state}")
    return 0


def _worker(args, settings: Settings) -> int:
    from .worker import run_worker

    run_worker(settings)
    return 0


def _person(args, settings: Settings) -> int:
    import asyncio

    from rules.iin import is_valid_iin

    from .registry_changes import format_history, read_history

    if not is_valid_iin(args.iin):
        print(f"esep: {args.iin!r} is not a valid IIN (12 digits with a matching check digit)", file=sys.stderr)
        return 2
    versions = asyncio.run(read_history(settings.resolve_broker(), settings.topics.registry_history, args.iin))
    for line in format_history(args.iin, versions):
        print(line)
    return 0 if versions else 1


def _recipient(args, settings: Settings) -> int:
    import asyncio

    from rules.iin import is_valid_iin

    from .recipient_view import format_recipient, read_recipient

    if not is_valid_iin(args.iin):
        print(f"esep: {args.iin!r} is not a valid IIN (12 digits with a matching check digit)", file=sys.stderr)
        return 2
    view = asyncio.run(read_recipient(settings.resolve_broker(), settings.topics, args.iin))
    for line in format_recipient(view):
        print(line)
    return 1 if view.empty else 0


def _person_entries(args, settings: Settings) -> int:
    import asyncio

    from rules.iin import is_valid_iin

    from .person_entries import format_entries, person_index, read_person_values

    if not is_valid_iin(args.iin):
        print(f"esep: {args.iin!r} is not a valid IIN (12 digits with a matching check digit)", file=sys.stderr)
        return 2
    values = asyncio.run(read_person_values(settings.resolve_broker(), settings.topics.reversals_state, args.iin))
    index = person_index(args.iin, values)
    for line in format_entries(args.iin, index):
        print(line)
    return 0 if index is not None else 1


def _config(args, settings: Settings) -> int:
    for name, value in settings.describe():
        print(f"{name:<28} {value}")
    return 0


def _schemas(args, settings: Settings) -> int:
    from models.schemas import write_schemas

    for path in write_schemas():
        print(path)
    return 0


def _token(args, settings: Settings) -> int:
    from .access import ROLES, ApiSettings, add_token, list_tokens

    path = ApiSettings.from_env().tokens_file
    if path is None:
        raise CommandError("set ESEP_TOKENS_FILE to the token file the workers read")
    if args.action == "list":
        for name, role, created in list_tokens(path):
            print(f"{name:<24} {role:<10} {created}")
        return 0
    if args.role not in ROLES:
        raise CommandError(f"--role must be one of {', '.join(ROLES)}")
    try:
        token = add_token(path, args.name, args.role)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    # The only time the token is shown: the file keeps its hash.
    print(token)
    print(f"esep: token {args.name!r} ({args.role}) added to {path}; it is shown only now", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="esep", description="Real-time posting of social contributions (Order No. 430).")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("topics", help="create the missing topics with the configured partitions")
    t.add_argument("action", choices=["create"])
    t.set_defaults(func=_topics)
    sub.add_parser("worker", help="run a posting worker (faust) until interrupted").set_defaults(func=_worker)
    person = sub.add_parser("person", help="a person's recorded data changes (full IIN shown only here)")
    person_sub = person.add_subparsers(dest="action", required=True)
    history = person_sub.add_parser("history", help="print every recorded version of a person")
    history.add_argument("iin")
    history.set_defaults(func=_person)
    person_entries = person_sub.add_parser(
        "entries", help="print the posted entries, each with the reversal that undid it, and the refund decisions")
    person_entries.add_argument("iin")
    person_entries.set_defaults(func=_person_entries)
    recipient = sub.add_parser("recipient", help="a recipient's records, state history and payments (full IIN "
                               "shown only here)")
    recipient.add_argument("iin")
    recipient.set_defaults(func=_recipient)
    sub.add_parser("config", help="print the configuration in force").set_defaults(func=_config)
    sub.add_parser("schemas", help="regenerate the JSON Schemas from the models").set_defaults(func=_schemas)
    token = sub.add_parser("token", help="statement API tokens (in ESEP_TOKENS_FILE, stored hashed)")
    token_sub = token.add_subparsers(dest="action", required=True)
    token_add = token_sub.add_parser("add", help="create a token and print it once")
    token_add.add_argument("name")
    token_add.add_argument("--role", required=True, choices=["operator", "auditor", "fund"])
    token_add.set_defaults(func=_token)
    token_sub.add_parser("list", help="names and roles (never the tokens)").set_defaults(func=_token)
    add_tool_commands(sub)
    return p


TOOL_COMMANDS = "esep.commands"


def add_tool_commands(sub) -> None:
    """Commands of the tools package (`esep[tools]`: local broker, demo, bench, ...), found through
    the `esep.commands` entry points so that the engine never imports the tools. In the worker's
    image the tools are absent and their commands say how to get them."""
    for ep in importlib.metadata.entry_points(group=TOOL_COMMANDS):
        try:
            register = ep.load()
        except ImportError as exc:
            missing = sub.add_parser(ep.name, help=f"(not installed: {exc.name})", add_help=False)
            missing.set_defaults(func=_tools_missing(ep.name))
            missing.add_argument("rest", nargs=argparse.REMAINDER)
            continue
        register(sub)


def _tools_missing(name: str):
    def explain(args, settings) -> int:
        print(f"esep: `esep {name}` is one of the tools, not installed here: pip install 'esep[tools]' "
              "from a checkout of the project", file=sys.stderr)
        return 2
    return explain


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return args.func(args, settings) or 0
    except SettingsError as exc:
        print(f"esep: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("esep: interrupted", file=sys.stderr)
        return 130
    except CommandError as exc:
        print(f"esep: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
