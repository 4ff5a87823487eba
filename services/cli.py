"""The `caas` command: run the server, and operator tasks on the configured store."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from importlib.metadata import version as package_version
from pathlib import Path

import uvloop
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from google.protobuf import json_format
from pydantic import ValidationError
from pydantic_settings import SettingsError

from services.audit.actions import export, verify_chain
from services.audit.servicer import record_proto, verification_proto
from services.backup import BackupError, backup, restore
from services.core.db.sqlite import check_writable
from services.core.db.transient import StoreUnusable
from services.core.errors import DomainError, not_found
from services.core.logs import configure_logging
from services.core.names import api_key_name, app_name
from services.core.principal import Operator
from services.core.settings import Settings, describe_settings, load_settings
from services.core.tls import SelfSigned, issue_client_certificate, with_self_signed
from services.gateway.validation import RequestValidator
from services.keys.provider import KeyUnavailable, LocalKeyProvider
from services.keys.rotation import rotate_master_key
from services.runtime import (
    Runtime,
    Stores,
    build_runtime,
    new_operator_token,
    open_stores,
    operator_token,
)
from services.server import serve
from services.workers import supervise


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caas", description="CAAS chat backend")
    parser.add_argument("--config", type=Path,
                        help="TOML settings file (also CAAS_CONFIG_FILE); environment wins")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the gRPC server",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve every CAAS service on one port until SIGTERM/SIGINT.",
        epilog="settings (environment variables, or keys of the --config TOML file):\n"
               + describe_settings())
    serve.add_argument("--listen", help="host:port to bind (CAAS_LISTEN)")
    serve.add_argument("--data-dir", type=Path, help="data directory (CAAS_DATA_DIR)")
    serve.add_argument("--workers", type=int,
                       help="server processes on one port, one per core (CAAS_WORKERS)")
    serve.add_argument("--tls-self-signed", action="store_true", default=None,
                       help="serve TLS with a certificate of a local CA made in the data "
                            "directory, for development (CAAS_TLS_SELF_SIGNED)")

    admin = commands.add_parser("admin", help="operator tasks, run against the store directly")
    tasks = admin.add_subparsers(dest="task", required=True)
    create_app = tasks.add_parser("create-app", help="create an app and print its first API key")
    create_app.add_argument("app_id", help="3-40 of [a-z0-9-], starting with a letter")
    create_app.add_argument("--display-name", help="defaults to the app id")
    create_app.add_argument("--plan", default="", help="rate-limit plan (default: the default)")
    create_key = tasks.add_parser("create-api-key", help="create another API key for an app")
    create_key.add_argument("app_id")
    create_key.add_argument("--display-name", default="")
    reindex = tasks.add_parser(
        "reindex", help="rebuild an app's search index from the store, online (progress on "
                        "stderr)")
    reindex.add_argument("app_id")
    verify = tasks.add_parser(
        "audit-verify", help="check an app's audit log chain (exit status 1 if broken); "
                             "prints the head to keep elsewhere")
    verify.add_argument("app_id")
    export = tasks.add_parser(
        "audit-export", help="print an app's audit records, oldest first, one JSON object "
                             "per line (as the API shows them)")
    export.add_argument("app_id")
    tasks.add_parser(
        "rotate-master-key",
        help="make a new local master key, rewrap every data key with it (online, "
             "progress on stderr) and retire the old ones")
    tasks.add_parser("search-status",
                     help="the search index's engine, and how far behind the log it is")
    client_cert = tasks.add_parser(
        "tls-client-certificate",
        help="issue a client certificate from the local CA of --tls-self-signed (for "
             "mutual TLS in development: CAAS_TLS_CLIENT_CA_FILE=<data dir>/tls/ca.pem)")
    client_cert.add_argument("name", help="the certificate's common name: who calls")
    backup = tasks.add_parser(
        "backup", help="back the embedded store, search index and media up into a new "
                       "directory, while the server serves (not the master keys: keep "
                       "them apart)")
    backup.add_argument("destination", type=Path, help="a new or empty directory")
    restore = tasks.add_parser(
        "restore", help="fill an empty data directory from a backup, every file checked "
                        "(the server stopped; start it on the directory after)")
    restore.add_argument("source", type=Path, help="a directory `caas admin backup` made")
    tasks.add_parser("operator-token", help="print the operator token the server accepts")
    tasks.add_parser("new-operator-token", help="print a fresh token for CAAS_OPERATOR_TOKEN")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    """The settings, flags first. Flags become this process's environment, which every
    process it starts (the workers of `--workers`) inherits: a flag reaches them all."""
    flags = {"CAAS_CONFIG_FILE": args.config,
             "CAAS_LISTEN": getattr(args, "listen", None),
             "CAAS_DATA_DIR": getattr(args, "data_dir", None),
             "CAAS_WORKERS": getattr(args, "workers", None),
             "CAAS_TLS_SELF_SIGNED": getattr(args, "tls_self_signed", None)}
    for variable, value in flags.items():
        if value is not None:
            os.environ[variable] = str(value.absolute() if isinstance(value, Path) else value)
    return load_settings()


def _self_signed(settings: Settings) -> Settings:
    """With tls_self_signed: the local CA's files made (or kept), how to trust them
    printed, and the settings naming them (in the environment too, for the workers)."""
    if not settings.tls_self_signed:
        return settings
    resolved = with_self_signed(settings)
    print(SelfSigned.under(settings.data_dir).trust_hint(), file=sys.stderr, flush=True)
    assert resolved.tls_cert_file and resolved.tls_key_file and resolved.tls_ca_file
    os.environ.update({"CAAS_TLS_SELF_SIGNED": "false",
                       "CAAS_TLS_CERT_FILE": str(resolved.tls_cert_file.absolute()),
                       "CAAS_TLS_KEY_FILE": str(resolved.tls_key_file.absolute()),
                       "CAAS_TLS_CA_FILE": str(resolved.tls_ca_file.absolute())})
    return load_settings()


async def _admin(args: argparse.Namespace, settings: Settings) -> dict[str, object]:
    if args.task == "backup":
        done = backup(settings.data_dir, args.destination, package_version("caas"))
        return {"backup": str(args.destination), **done.as_dict()}
    if args.task == "restore":
        done = restore(args.source, settings.data_dir)
        return {"data_dir": str(settings.data_dir), **done.as_dict()}
    if args.task == "operator-token":
        return {"operator_token": operator_token(settings)}
    if args.task == "new-operator-token":
        return {"operator_token": new_operator_token()}
    if args.task == "tls-client-certificate":
        cert, key = issue_client_certificate(settings.data_dir, args.name)
        return {"certificate_file": str(cert), "key_file": str(key)}
    if args.task in ("audit-verify", "audit-export", "rotate-master-key"):
        stores = await open_stores(settings)  # the store alone: nothing runs beside
        try:
            if args.task == "rotate-master-key":
                return await _rotate(stores)
            return await _audit_task(args, stores)
        finally:
            await stores.close()
    runtime = await build_runtime(settings)
    try:
        # The same contract rules as the RPCs, checked by the same validator.
        validator = RequestValidator()
        if args.task in ("reindex", "search-status"):
            return await _search_task(args, runtime)
        if args.task == "create-app":
            display_name = args.display_name or args.app_id
            validator.check(apps_pb.CreateAppRequest(
                app_id=args.app_id, app=apps_res.App(display_name=display_name, plan=args.plan)))
            app, first = await runtime.apps.do_create_app(
                Operator(), args.app_id, display_name, args.plan)
            return {"app": app_name(app.app_id), "display_name": app.display_name,
                    "plan": app.plan, "api_key": api_key_name(app.app_id, first.key.key_id),
                    "api_key_secret": first.secret}
        validator.check(apps_pb.CreateApiKeyRequest(
            parent=app_name(args.app_id), api_key=apps_res.ApiKey(display_name=args.display_name)))
        new = await runtime.apps.do_create_api_key(Operator(), args.app_id, args.display_name)
        return {"api_key": api_key_name(new.key.app_id, new.key.key_id),
                "api_key_secret": new.secret}
    finally:
        await runtime.close()


async def _rotate(stores: Stores) -> dict[str, object]:
    provider = stores.keyring.provider
    assert isinstance(provider, LocalKeyProvider)  # the only provider there is
    done = await rotate_master_key(stores.keyring, provider, lambda n: print(
        f"rewrapped {n} data keys", file=sys.stderr, flush=True))
    return {"active_master_key": done.active, "data_keys_rewrapped": done.rewrapped,
            "retired_master_keys": done.retired}


async def _audit_task(args: argparse.Namespace, stores: Stores) -> dict[str, object]:
    if await stores.apps.get_app(args.app_id) is None:
        raise not_found("caas.dev/App", app_name(args.app_id))
    if args.task == "audit-verify":
        found = await verify_chain(stores.audit, args.app_id)
        return json_format.MessageToDict(verification_proto(found),
                                         always_print_fields_with_no_presence=True)
    count = 0
    async for record in export(stores.audit, args.app_id):
        print(json.dumps(json_format.MessageToDict(record_proto(record))), flush=False)
        count += 1
    print(json.dumps({"app": app_name(args.app_id), "records": count}), file=sys.stderr)
    return {}


async def _search_task(args: argparse.Namespace, runtime: Runtime) -> dict[str, object]:
    indexer = runtime.indexer
    await indexer.start()
    if args.task == "reindex":
        app = await runtime.stores.apps.get_app(args.app_id)
        if app is None:
            raise not_found("caas.dev/App", app_name(args.app_id))
        written = await indexer.reindex(
            args.app_id, lambda line: print(line, file=sys.stderr, flush=True))
        messages, conversations = await indexer.index.count(args.app_id)
        return {"app": app_name(args.app_id), "documents_written": written,
                "messages_indexed": messages, "conversations_indexed": conversations}
    lag = await indexer.lag()
    return {"engine": runtime.settings.search_engine, "consumer": indexer.consumer,
            "events_behind": sum(entry.head - entry.indexed for entry in lag),
            "apps_behind": [{"app": app_name(entry.app_id), "indexed": entry.indexed,
                             "head": entry.head} for entry in lag]}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        # Never echo the values: a setting may be a secret (the operator token).
        problems = "\n".join(f"  {'.'.join(str(p) for p in error['loc']) or 'settings'}: "
                             f"{error['msg']}" for error in exc.errors(include_input=False))
        print(f"caas: bad settings:\n{problems}", file=sys.stderr)
        return 2
    except SettingsError as exc:  # a value that does not parse (JSON of a list, say)
        print(f"caas: bad settings:\n  {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.access_log, settings.access_log_sample)
    try:
        if args.command == "serve":
            if settings.store == "sqlite":
                # Before anything starts (the workers of --workers would each fail
                # alike, restarted forever): an unwritable data directory is an
                # operator's to fix. (Opening the store checks it too.)
                check_writable(settings.data_dir)
            settings = _self_signed(settings)
            # On uvloop (libuv): the same asyncio, for less CPU per call and delivery.
            uvloop.run(supervise(settings) if settings.workers > 1 else serve(settings))
            return 0
        result = asyncio.run(_admin(args, settings))
        if args.task == "audit-export":
            return 0  # the records are out, one per line
        if args.task == "audit-verify" and not result["intact"]:
            print(json.dumps(result, indent=2))
            return 1
    except (StoreUnusable, KeyUnavailable, BackupError) as error:  # one line, like
        # bad settings
        print(f"caas: {error}", file=sys.stderr)
        return 2
    except DomainError as error:
        print(f"caas: {error.reason}: {error.message}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
