"""`python -m bot sandbox`: serve the local IMA sandbox until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from bot.sandbox.config import DEFAULT_API_KEY, DEFAULT_PORT, DEFAULT_UPLOAD_APP_KEY, SandboxConfig
from bot.sandbox.server import Sandbox

log = logging.getLogger("bot.sandbox")


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not within [0, 1]")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be above 0")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The sandbox's command-line options."""
    env_scale = os.environ.get("IMA_SANDBOX_TIME_SCALE")
    p = argparse.ArgumentParser(
        prog="python -m bot sandbox",
        description="Serve an IMA-compatible sandbox on loopback (no key, no network).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)"
    )
    p.add_argument("--api-key", default=DEFAULT_API_KEY, help="the one API key accepted")
    p.add_argument("--balance", type=int, default=10000, help="points on the account (debited per task)")
    p.add_argument(
        "--time-scale",
        type=_positive,
        default=float(env_scale) if env_scale else 1.0,
        help="multiplies generation times (env IMA_SANDBOX_TIME_SCALE; default 1)",
    )
    p.add_argument("--fail-rate", type=_rate, default=0.0, help="share of tasks that fail")
    p.add_argument("--error-rate-429", type=_rate, default=0.0, help="share of API requests answered 429")
    p.add_argument("--error-rate-500", type=_rate, default=0.0, help="share of API requests answered 500")
    p.add_argument("--latency-ms", type=_non_negative, default=0, help="added to every API request")
    p.add_argument(
        "--create-502-rate",
        type=_rate,
        default=0.0,
        help="share of creates that go through (charged) but are answered 502 with an HTML page",
    )
    p.add_argument(
        "--slow-create-rate",
        type=_rate,
        default=0.0,
        help="share of creates answered --slow-create-ms late, after the task is created",
    )
    p.add_argument(
        "--slow-create-ms", type=_non_negative, default=0, help="how late a slow create is answered"
    )
    p.add_argument("--seed", type=int, default=0, help="seeds every random draw, so runs repeat")
    p.add_argument(
        "--media-dir", type=Path, default=None, help="where rendered media go (default: a temp dir)"
    )
    p.add_argument(
        "--upload-app-key", default=DEFAULT_UPLOAD_APP_KEY, help="app key the upload sign must use"
    )
    p.add_argument("--port-file", type=Path, default=None, help="write the bound port here once serving")
    p.add_argument(
        "--ledger-file",
        type=Path,
        default=None,
        help="append every created task here as a JSON line (task id, key fingerprint, points, request)",
    )
    return p


async def serve(config: SandboxConfig, port_file: Path | None = None) -> None:
    """Run a sandbox until SIGINT / SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with Sandbox(config) as sb:
        log.info(
            "IMA sandbox ready: IMA_BASE_URL=%s IMA_IM_BASE_URL=%s (key %s)",
            sb.base_url,
            sb.base_url,
            "as configured" if config.api_key != DEFAULT_API_KEY else DEFAULT_API_KEY,
        )
        if port_file is not None:
            tmp = port_file.with_name(port_file.name + ".tmp")
            tmp.write_text(str(sb.port), encoding="utf-8")
            tmp.replace(port_file)  # readers never see a half-written file
        await stop.wait()
        log.info("stopping; %d tasks created, balance %d", len(sb.ledger), sb.balance)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, serve until Ctrl-C. Returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.error_rate_429 + args.error_rate_500 > 1:
        log.error("--error-rate-429 + --error-rate-500 must not exceed 1")
        return 2
    if args.create_502_rate + args.slow_create_rate > 1:
        log.error("--create-502-rate + --slow-create-rate must not exceed 1")
        return 2
    config = SandboxConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        balance=args.balance,
        time_scale=args.time_scale,
        fail_rate=args.fail_rate,
        error_rate_429=args.error_rate_429,
        error_rate_500=args.error_rate_500,
        latency_ms=args.latency_ms,
        seed=args.seed,
        media_dir=args.media_dir,
        upload_app_key=args.upload_app_key,
        create_502_rate=args.create_502_rate,
        slow_create_rate=args.slow_create_rate,
        slow_create_ms=args.slow_create_ms,
        ledger_file=args.ledger_file,
    )
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(config, args.port_file))
    except KeyboardInterrupt:
        pass
    except OSError as e:
        log.error("cannot serve on %s:%s: %s", args.host, args.port, e)
        return 1
    return 0
