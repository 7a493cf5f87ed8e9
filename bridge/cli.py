"""The ``amq-bridge`` command: run, replay, broker, publish, check, unsubscribe, schema.

Exit status: 0 done, 1 a runtime error (one line on stderr, no traceback), 2 a usage or
configuration error, 130 forced stop by a second signal; a worker process of ``workers: N``
(``run --worker I``) exits 3 on an error no restart can fix (see :mod:`bridge.workers`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlsplit

from bridge import __version__, logs
from bridge.config import TRANSPORTS, BridgeConfig, Destination, load_config
from bridge.errors import BridgeError, ConfigError

log = logging.getLogger("bridge.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``amq-bridge`` command."""
    args = _parser().parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"amq-bridge: config error: {logs.redact(str(exc))}", file=sys.stderr)
        return 2
    except BridgeError as exc:
        print(f"amq-bridge: error: {logs.redact(str(exc))}", file=sys.stderr)
        return _error_status(args, exc)
    except KeyboardInterrupt:
        return 130


def _error_status(args: argparse.Namespace, exc: BridgeError) -> int:
    """1, or for a worker (``run --worker``) whose error no restart can fix, ``FATAL_STATUS``."""
    if getattr(args, "worker", None) is None:
        return 1
    from bridge.runner import FATAL
    from bridge.workers import FATAL_STATUS

    return FATAL_STATUS if isinstance(exc, FATAL) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amq-bridge", description="Real-time events from ActiveMQ, delivered.")
    parser.add_argument("--version", action="version", version=f"amq-bridge {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default="INFO", type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO")
    common.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="log lines as text or one JSON object each (default: text)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", parents=[common], help="consume the subscription into the sink")
    _config_option(run)
    run.add_argument("--transport", choices=TRANSPORTS, help="override transport: of the config")
    run.add_argument("--max-events", type=_positive_int, metavar="N", help="stop after N events")
    run.add_argument("--idle-timeout", type=float, metavar="SECONDS", help="stop after SECONDS without an event")
    run.add_argument("--worker", type=_positive_int, help=argparse.SUPPRESS)  # set by the workers: N supervisor
    run.set_defaults(func=_run)

    replay = commands.add_parser("replay", parents=[common],
                                 help="deliver dead-lettered events that can now be delivered to the sink")
    _config_option(replay)
    replay.add_argument("--dead-letter", type=Path, metavar="FILE", help="default: dead_letter of the config")
    replay.add_argument("--dry-run", action="store_true", help="only say what would be replayed")
    replay.set_defaults(func=_replay)

    broker = commands.add_parser("broker", parents=[common], help="run a local ActiveMQ broker (the embedded default)")
    broker.add_argument("-c", "--config", type=Path,
                        help="take ports, credentials and the subscription queue from this config")
    broker.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    broker.add_argument("--openwire-port", type=int, help="OpenWire port (default 61616; 0: any free)")
    broker.add_argument("--stomp-port", type=int, help="STOMP port (default 61613; 0: any free)")
    broker.add_argument("--persistent", action="store_true", help="keep messages on disk (KahaDB)")
    broker.add_argument("--data-dir", type=Path, help="where persistent messages live (default: ./broker-data)")
    broker.add_argument("--shared-store", action="store_true",
                        help="master/slave on one --data-dir: if another broker holds it, wait as its slave "
                             "(implies --persistent)")
    broker.add_argument("--ssl-port", type=int, help="also serve OpenWire over TLS (ssl://) here (0: any free)")
    broker.add_argument("--stomp-ssl-port", type=int, help="also serve STOMP over TLS (stomp+ssl://) here (0: any free)")
    broker.add_argument("--key-store", type=Path, help="the TLS connectors' certificate and key (PKCS12 or .jks); "
                        "password from $AMQ_BROKER_KEY_STORE_PASSWORD")
    broker.add_argument("--client-ca", type=Path, help="require TLS client certificates signed by this CA (PEM)")
    broker.set_defaults(func=_broker)

    publish = commands.add_parser("publish", parents=[common], help="publish AtData-shaped events to the feed topic")
    _config_option(publish)
    publish.add_argument("--transport", choices=TRANSPORTS, help="override transport: of the config")
    publish.add_argument("--count", type=_positive_int, default=1000, help="events to generate (default 1000)")
    publish.add_argument("--start", type=int, default=0, help="number of the first generated event")
    publish.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    publish.add_argument("--file", metavar="PATH", help="send the JSON lines of PATH (- for stdin) instead")
    publish.add_argument("--destination", metavar="KIND:NAME", type=_destination,
                         help="default: topic:RTO.<namespace> of the config")
    publish.add_argument("--persistent", action="store_true", help="send persistent messages")
    publish.add_argument("--sequence", action="store_true", help="add a seq field to generated events")
    publish.set_defaults(func=_publish)

    unsubscribe = commands.add_parser("unsubscribe", parents=[common],
                                      help="remove the durable topic subscription of the config from the broker")
    _config_option(unsubscribe)
    unsubscribe.add_argument("--transport", choices=TRANSPORTS, help="override transport: of the config")
    unsubscribe.set_defaults(func=_unsubscribe)

    check = commands.add_parser("check", parents=[common],
                                help="validate the config, show the classpath, try each transport")
    _config_option(check)
    check.set_defaults(func=_check)

    schema = commands.add_parser("schema", help="print the JSON Schema of config.yaml (as config.schema.json)")
    schema.set_defaults(func=_schema, log_level="INFO", log_format="text")
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", type=Path, default=Path("config.yaml"),
                        help="configuration file (default: config.yaml)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _destination(text: str) -> Destination:
    try:
        return Destination.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _load(args: argparse.Namespace) -> BridgeConfig:
    config = load_config(args.config)
    for secret in config.secrets:
        logs.register_secret(secret)
    if getattr(args, "transport", None):
        config = config.model_copy(update={"transport": args.transport})
    return config


def _on_signals(first: Callable[[], None], grace: float | None = None,
                before_exit: Callable[[], None] | None = None) -> None:
    """Call ``first`` on SIGINT/SIGTERM. A second signal, or ``grace`` seconds without the process
    having exited, ends it at once (status 130, after ``before_exit``) and acknowledges nothing more."""
    received = []

    def force(why: str) -> None:
        if before_exit is not None:
            before_exit()
        os.write(2, f"amq-bridge: {why}; exiting now, unacknowledged events will be delivered again\n".encode())
        os._exit(130)

    def handler(signum: int, _frame: object) -> None:
        if received:
            force("second signal")
        received.append(signum)
        log.info("%s received; finishing the batch in hand (again to force)", signal.Signals(signum).name)
        if grace is not None:
            timer = threading.Timer(grace, force, args=(f"shutdown took longer than {grace:g} s",))
            timer.daemon = True
            timer.start()
        first()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _run(args: argparse.Namespace) -> int:
    from bridge.runner import Runner

    config, peers = _load(args), []
    if args.worker is not None:
        from bridge import workers

        workers.tag_logs(args.worker)
        peers = workers.peer_sources(config, args.worker)
        config = workers.worker_config(config, args.worker)
    elif config.workers > 1:
        return _supervise(args, config)
    runner = Runner(config, max_events=args.max_events, idle_timeout=args.idle_timeout, peers=peers)
    _on_signals(runner.stop, config.shutdown_timeout)
    metrics = None
    if config.metrics.port is not None:
        from bridge.metrics import MetricsServer

        metrics = MetricsServer(runner.stats, config.metrics.host, config.metrics.port,
                                config.metrics.max_event_age).start()
    try:
        runner.run()
    finally:
        if metrics is not None:
            metrics.close()
    return 0


def _supervise(args: argparse.Namespace, config: BridgeConfig) -> int:
    """``workers: N``: run N worker processes of this same command (see :mod:`bridge.workers`)."""
    from bridge.workers import Supervisor, worker_command, worker_env

    options = ["--log-level", args.log_level, "--log-format", args.log_format]
    for flag, value in (("--transport", args.transport), ("--max-events", args.max_events),
                        ("--idle-timeout", args.idle_timeout)):
        if value is not None:
            options += [flag, str(value)]
    supervisor = Supervisor(config, lambda i: worker_command(args.config, i, options), env=worker_env())
    _on_signals(supervisor.stop, before_exit=supervisor.kill)
    return supervisor.run()


def _replay(args: argparse.Namespace) -> int:
    from bridge.replay import replay

    for result in replay(_load(args), args.dead_letter, dry_run=args.dry_run):
        print(result.summary(args.dry_run))
    return 0


def _broker(args: argparse.Namespace) -> int:
    from bridge.broker import BrokerOptions, serve, tls_options

    options = BrokerOptions(host=args.host)
    if args.config is not None:
        config = _load(args)
        creds = config.credentials
        options = dataclasses.replace(
            options,
            openwire_port=urlsplit(config.openwire.urls[0]).port or options.openwire_port,
            stomp_port=config.stomp.hosts[0][1],
            users=((creds.username, creds.password),) if creds.username else (),
            queues=(config.subscription.destination.name,) if config.subscription.destination.kind == "queue" else (),
        )
    if args.openwire_port is not None:
        options = dataclasses.replace(options, openwire_port=args.openwire_port)
    if args.stomp_port is not None:
        options = dataclasses.replace(options, stomp_port=args.stomp_port)
    if args.persistent or args.shared_store:
        options = dataclasses.replace(options, persistent=True, data_dir=args.data_dir or Path("broker-data"),
                                      shared_store=args.shared_store)
    options = tls_options(options, ssl_port=args.ssl_port, stomp_ssl_port=args.stomp_ssl_port,
                          key_store=args.key_store, client_ca=args.client_ca)
    return serve(options)


def _publish(args: argparse.Namespace) -> int:
    from bridge.publish import file_bodies, generated_bodies, open_input, publish

    config = _load(args)
    destination = args.destination or config.subscription.feed_topic
    if destination is None:
        raise ConfigError("has no namespace; give --destination topic:NAME", source=str(args.config),
                          key="subscription.namespace")
    if args.file:
        bodies, total = file_bodies(open_input(args.file)), None
    else:
        bodies, total = generated_bodies(args.count, args.start, sequence=args.sequence), args.count
    progress = sys.stderr if sys.stderr.isatty() else None
    publish(config, destination, bodies, rate=args.rate, persistent=args.persistent, total=total, progress=progress)
    return 0


def _unsubscribe(args: argparse.Namespace) -> int:
    from bridge.unsubscribe import unsubscribe

    print(f"amq-bridge: {unsubscribe(_load(args))}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from bridge.check import check

    return check(_load(args))


def _schema(args: argparse.Namespace) -> int:
    from bridge.config.schema import schema_text

    sys.stdout.write(schema_text())
    return 0
