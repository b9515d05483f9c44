"""``python -m kemu.services.store``: run the store without the kemu CLI.

Tests and benchmarks start the store as a real process this way; ``kemu
store`` calls the same ``run``. Bad arguments or an unusable data dir print
one line and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kemu.services.store.errors import StoreError
from kemu.services.store.server import StoreConfig, run
from kemu.util import logsetup, tls
from kemu.util.metricsflag import add_metrics_flag


def parse_args(argv: list[str] | None = None) -> StoreConfig:
    parser = argparse.ArgumentParser(
        prog="kemu store", description="Serve the etcd-compatible kemu store."
    )
    parser.add_argument("--listen", default="127.0.0.1:2379", help="HOST:PORT to serve on")
    parser.add_argument("--data-dir", required=True, type=Path, help="directory of the database")
    parser.add_argument(
        "--fsync",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fsync every commit (default: on)",
    )
    parser.add_argument("--name", default="default", help="member name")
    parser.add_argument(
        "--progress-notify-interval",
        type=float,
        default=5.0,
        help="seconds between watch progress notifications",
    )
    tls.add_etcd_server_flags(parser)
    add_metrics_flag(parser)
    logsetup.add_flags(parser)
    args = parser.parse_args(argv)
    logsetup.configure_from_args("store", args)
    if args.progress_notify_interval <= 0:
        parser.error("--progress-notify-interval must be positive")
    try:
        store_tls = tls.etcd_server_tls(args)
    except tls.TLSConfigError as e:
        parser.error(str(e))
    return StoreConfig(
        tls=store_tls,
        listen=args.listen,
        data_dir=args.data_dir,
        fsync=args.fsync,
        name=args.name,
        progress_notify_interval=args.progress_notify_interval,
        metrics_listen=args.metrics_listen,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        run(config)
    except StoreError as e:
        print(f"kemu store: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
