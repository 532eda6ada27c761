"""python -m emulator: serve the ACS Identity emulator until stopped.

Prints exactly one line on stdout when ready: ``ACS_CONNECTION_STRING=endpoint=…;accesskey=…``.
Everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import secrets
import signal
import sys
import uuid
from pathlib import Path

from aiohttp import web

from emulator.app import Emulator, create_app
from emulator.faults import Faults
from emulator.identity_ids import is_guid
from emulator.limits import DEFAULT_LIMITS, RateLimits
from emulator.state import MemoryState, SqliteState
from emulator.tls import ensure_certificate, server_context
from emulator.tokens import TokenSigner, key_from_pem, key_to_pem, new_signing_key

logger = logging.getLogger("emulator")


def resource_guid(value: str) -> str:
    if not is_guid(value):
        raise argparse.ArgumentTypeError(f"not a GUID: {value!r}")
    return value.lower()


def resource_identity(requested: str | None, state: MemoryState) -> str:
    """The resource id: --resource-id, else the state file's, else a new random one; a state file keeps its own."""
    stored = state.meta("resource_id")
    if requested is None:
        return stored.decode() if stored else str(uuid.uuid4())
    if stored and stored.decode().lower() != requested:
        raise SystemExit(f"--resource-id {requested} differs from the resource id kept in --state-file ({stored.decode()})")
    return requested


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulator", description="Local ACS Identity emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    parser.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS")
    parser.add_argument("--access-key", default=os.environ.get("EMULATOR_ACCESS_KEY"), help="base64 key (default: random)")
    parser.add_argument("--resource-name", default="acs-emulator", help="reported in logs and /_emulator/stats")
    parser.add_argument(
        "--resource-id",
        type=resource_guid,
        help="the ACS resource's id (a GUID), named in every identity id 8:acs:<resource id>_…; default: random "
        "(or the one in --state-file). Two emulators with different ids act as two ACS resources.",
    )
    parser.add_argument(
        "--cert-dir", type=Path, default=Path(".local/emulator"), help="where emulator-cert.pem (and its key) live"
    )
    parser.add_argument("--state-file", type=Path, help="keep identities (and the signing key) in this SQLite file")
    parser.add_argument(
        "--identity-header",
        default=os.environ.get("EMULATOR_IDENTITY_HEADER") or secrets.token_hex(16),
        help="the X-IDENTITY-HEADER secret of /_emulator/msi/token (default: random)",
    )
    for operation, (count, _) in DEFAULT_LIMITS.items():
        parser.add_argument(f"--limit-{operation}", type=int, default=count, help=f"{operation} requests per window")
    parser.add_argument("--limit-window", type=float, default=30.0, help="rate limit window in seconds")
    parser.add_argument("--fault-throttle", type=float, default=0.0, help="share of API requests answered 429")
    parser.add_argument("--fault-unavailable", type=float, default=0.0, help="share of API requests answered 503")
    parser.add_argument("--fault-throttle-next", type=int, default=0, help="answer the first N API requests 429")
    parser.add_argument("--fault-unavailable-next", type=int, default=0, help="answer the first N API requests 503")
    parser.add_argument("--fault-latency-ms", type=int, default=0, help="added to every API request")
    parser.add_argument("--fault-retry-after", type=int, default=1, help="Retry-After seconds on injected faults")
    parser.add_argument("--seed", type=int, help="seed the fault RNG for reproducible runs")
    return parser.parse_args(argv)


def build_emulator(args: argparse.Namespace) -> Emulator:
    state = SqliteState(args.state_file) if args.state_file else MemoryState()
    pem = state.meta("signing_key")
    key = key_from_pem(pem) if pem else new_signing_key()
    resource_id = resource_identity(args.resource_id, state)
    access_key = args.access_key or (state.meta("access_key") or base64.b64encode(secrets.token_bytes(32))).decode()
    base64.b64decode(access_key, validate=True)  # fail early on a malformed key
    if not pem:
        state.set_meta("signing_key", key_to_pem(key))
    state.set_meta("resource_id", resource_id.encode())
    if args.state_file:
        state.set_meta("access_key", access_key.encode())
    faults = Faults()
    faults.update(
        {
            "throttleRate": args.fault_throttle,
            "unavailableRate": args.fault_unavailable,
            "latencyMs": args.fault_latency_ms,
            "retryAfterSeconds": args.fault_retry_after,
            "throttleNext": args.fault_throttle_next,
            "unavailableNext": args.fault_unavailable_next,
        }
    )
    limits = RateLimits({op: (getattr(args, f"limit_{op}"), args.limit_window) for op in DEFAULT_LIMITS})
    emulator = Emulator(
        access_key=access_key,
        signer=TokenSigner(key, resource_id),
        state=state,
        limits=limits,
        faults=faults,
        identity_header=args.identity_header,
        resource_name=args.resource_name,
    )
    if args.seed is not None:
        emulator.rng.seed(args.seed)
    return emulator


async def serve(args: argparse.Namespace) -> None:
    emulator = build_emulator(args)
    ssl_context = None
    if not args.http:
        cert_path, key_path = ensure_certificate(args.cert_dir)
        ssl_context = server_context(cert_path, key_path)
        logger.info("TLS certificate: %s (trust it with connection_verify=<path> or ACS_CA_BUNDLE)", cert_path.resolve())
    runner = web.AppRunner(create_app(emulator), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]  # the real port when --port 0
    scheme = "http" if args.http else "https"
    logger.info(
        "ACS Identity emulator (%s, resource id %s) on %s://%s:%d",
        args.resource_name,
        emulator.resource_id,
        scheme,
        args.host,
        port,
    )
    print(f"ACS_CONNECTION_STRING=endpoint={scheme}://{args.host}:{port}/;accesskey={emulator.access_key}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    logger.info("stopping")
    await runner.cleanup()
    emulator.state.close()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
