"""`hark serve | config | bench`."""

from __future__ import annotations

import argparse
import gc
import json
import socket
import sys

from hark import __version__
from hark.config import Settings, load_settings
from hark.errors import ConfigError, MissingDependency


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hark", description="Self-hosted real-time voice AI server.")
    parser.add_argument("--version", action="version", version=f"hark {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the server")
    serve.add_argument("--config", help="YAML config file (also HARK_CONFIG)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    show = commands.add_parser("config", help="print the effective configuration, secrets masked")
    show.add_argument("--config", help="YAML config file (also HARK_CONFIG)")
    bench = commands.add_parser("bench", help="measure latency, capacity and throughput (docs/benchmarks.md)")
    bench.add_argument(
        "--quick",
        action="store_true",
        help="a shortened run: fewer turns and steps (overhead and capacity still run three times)",
    )
    bench.add_argument("--json", metavar="PATH", help="write the results as JSON")
    bench.add_argument(
        "--only",
        metavar="LIST",
        help="comma-separated: overhead,pipecat,capacity,bargein,local,speech,talkers,soak,meetings,"
        "wyoming,turns,phone (default: all but soak)",
    )
    bench.add_argument("--docs", default="docs/benchmarks.md", help="where to write the report and plots")
    bench.add_argument("--no-docs", action="store_true", help="do not write the report")
    return parser


def _load(path: str | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"hark: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hark.app import create_app
    from hark.assembly import prebuild
    from hark.drain import CONNECTIONS_GRACE_S, Drainer, DrainingServer
    from hark.logs import configure_logging
    from hark.security import check_startup, install_denial_log_filter
    from hark.security.slow import http_protocol
    from hark.transports.wyoming import check_startup as check_wyoming

    settings = _load(args.config)
    if args.host:
        settings.server.host = args.host
    if args.port:
        settings.server.port = args.port
    configure_logging(
        settings.server.log_level,
        settings.server.log_dir,
        log_format=settings.observability.log_format,
        debug_fields=settings.observability.debug_fields,
        log_ids=settings.observability.log_ids,
    )
    try:
        check_startup(settings)
        check_wyoming(settings)
    except ConfigError as exc:
        print(f"hark: {exc}", file=sys.stderr)
        return 2
    host = settings.server.host
    shown = f"[{host}]" if ":" in host else host
    print(f"hark {__version__}: loading models ...", flush=True)
    try:
        prebuilt = prebuild(settings)
    except (ConfigError, MissingDependency) as exc:
        print(f"hark: {exc}", file=sys.stderr)
        return 2
    drainer = Drainer(settings.security.drain_timeout_s)
    app = create_app(settings, prebuilt=prebuilt, drainer=drainer)
    print(f"hark {__version__}: serving http://{shown}:{settings.server.port}", flush=True)
    config = uvicorn.Config(
        app,
        host=host,
        port=settings.server.port,
        log_level=settings.server.log_level,
        access_log=False,
        log_config=None,  # uvicorn logs through hark's handler (see configure_logging)
        # Drain first (see hark.drain); then give connections a moment before cutting them.
        timeout_graceful_shutdown=CONNECTIONS_GRACE_S,
        ws_max_size=settings.security.max_frame_bytes,
        ws_per_message_deflate=settings.server.websocket_compression,
        ws_ping_interval=settings.security.ping_interval_s,
        ws_ping_timeout=settings.security.ping_timeout_s,
        timeout_keep_alive=settings.server.keep_alive_s,
        http=http_protocol(settings.server.header_timeout_s),
    )
    install_denial_log_filter()  # after uvicorn.Config, which sets up uvicorn's loggers
    server = DrainingServer(config, drainer, on_started=prepare_serving_heap)
    server.run(sockets=[listening_socket(host, settings.server.port)])
    return 0


# The collector's thresholds while serving (Python's defaults: 700, 10, 10). At 100 sessions
# the default meant ~7 gen-0 collections a second and a full one every ~15 s (21-45 ms on a
# loaded core); at 10,000 a gen-0 collection comes every ~2 s (6-10 ms) and, in the 15 s
# windows measured, no full one (docs/benchmarks.md, entry 37). The price: RSS +3 MB at 100
# sessions, +12 MB at 150 (cyclic garbage waits longer), too little to make it a setting.
SERVING_GC_THRESHOLDS = (10_000, 10, 10)


def prepare_serving_heap() -> None:
    """Once start-up is done: freeze its heap, then set the collector's serving thresholds."""
    freeze_startup_heap()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


def freeze_startup_heap() -> int:
    """Move what start-up built (modules, models, the app, the open services) out of the
    collector's reach: a full collection walked all of it again at every turn's worth of
    garbage, pausing the event loop for tens of milliseconds at 100 sessions. Called once,
    after the lifespan has opened the services and before the first request. What start-up
    left as garbage is collected first, so only live objects are frozen. Returns how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


SEND_BUFFER_BYTES = 64 * 1024


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, with a fixed send buffer that accepted connections inherit. Left to
    auto-tune, the kernel lets megabytes (a minute of reply audio) pile up for a client that has
    stopped reading, where hark's own outbound budget cannot see them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def show_config(args: argparse.Namespace) -> int:
    from hark.assembly import stage_providers
    from hark.engines import registry

    settings = _load(args.config)
    try:
        registry.check_options(stage_providers(settings))
    except ConfigError as exc:
        print(f"hark: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(settings.masked(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "bench":
        from hark.bench.runner import main as bench_main

        return bench_main(args)
    return show_config(args)
