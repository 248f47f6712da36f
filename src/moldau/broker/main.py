"""``moldau broker``: load config, run one broker until SIGTERM/SIGINT, shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from moldau.log.config import ConfigError

log = logging.getLogger("moldau.broker")


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every etcd request (lease keepalives twice a second) at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)


async def _serve(config: object) -> None:
    from moldau.broker.server import Broker

    broker = Broker(config)  # type: ignore[arg-type]
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host, port = broker.advertised
    print(
        f"moldau broker {broker.node_id} listening on "
        f"{broker.config.listen_host}:{broker.config.listen_port} "
        f"(advertised {host}:{port}), data in {broker.data_dir.resolve()}, "
        f"cluster id {broker.cluster_id}",
        flush=True,
    )
    await stop.wait()
    log.info("shutting down")
    await broker.stop()
    log.info("shut down cleanly")


def run(
    listen: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    overrides: list[str],
    node_id: int | None,
) -> int:
    """Run a broker in the foreground; returns the process exit code."""
    from moldau.broker.config import BrokerConfig

    _configure_logging()
    try:
        config = BrokerConfig.load(
            config_file, overrides, listen=listen, data_dir=data_dir, node_id=node_id
        )
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    from moldau.cluster.errors import ClusterIdMismatchError, EtcdError, NodeIdInUseError

    try:
        runner(_serve(config))
    except (OSError, ConfigError, EtcdError, NodeIdInUseError, ClusterIdMismatchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
