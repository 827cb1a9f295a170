"""The `ics serve` process: config, store, recovery, SIP, HTTP and a clean shutdown on signals.

It sits above every layer (call control, accounts, the HTTP service) and wires them
together, so that none of them needs to import another sideways.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("callcontrol")


class _JsonLines(logging.Formatter):
    """Call outcome lines are JSON already; everything else gets a plain prefix."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "ics.calls":
            return record.getMessage()
        return f"{record.levelname.lower()} {record.name}: {super().format(record)}"


class _CollectorWatch:
    """Logs full garbage collections that stall the event loop long enough to matter."""

    def __init__(self, threshold: float = 0.05) -> None:
        self.threshold = threshold
        self.started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif (paused := time.perf_counter() - self.started) >= self.threshold:
            log.warning("garbage collection (generation %d) paused calls for %.0f ms",
                        info.get("generation", -1), paused * 1000)


class LoopLagWatch:
    """Measures how late a short timer fires on the event loop, and logs a summary
    of each period in which some callback held the loop long enough to matter.

    Every SIP message and media packet waits behind whatever callback is running,
    so this lag is what post-dial delay and jitter are made of. ``note(lag)`` and
    ``summary()`` do no I/O; ``start(loop)`` runs the probe timer.
    """

    def __init__(self, interval: float = 0.01, period: float = 10.0,
                 threshold: float = 0.02) -> None:
        self.interval = interval
        self.period = period
        self.threshold = threshold
        self._lags: list[float] = []
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._period_end = 0.0

    def note(self, lag: float) -> None:
        self._lags.append(max(lag, 0.0))

    def summary(self) -> tuple[int, float, float, float] | None:
        """(samples, p50, p99, max) of the lags noted since the last summary, in seconds."""
        lags, self._lags = sorted(self._lags), []
        if not lags:
            return None
        n = len(lags)
        return n, lags[n // 2], lags[min(n - 1, int(n * 0.99))], lags[-1]

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        # perf_counter, not loop.time(): uvloop's clock only moves once per iteration,
        # in whole milliseconds.
        self._due = time.perf_counter() + self.interval
        self._period_end = self._due + self.period
        self._handle = loop.call_later(self.interval, self._fired, loop)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fired(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.perf_counter()
        self.note(now - self._due)
        if now >= self._period_end:
            self._period_end = now + self.period
            figures = self.summary()
            if figures is not None and figures[3] >= self.threshold:
                n, p50, p99, worst = figures
                log.warning("event loop lag over %d probes: p50 %.1f ms, p99 %.1f ms, "
                            "max %.1f ms", n, p50 * 1000, p99 * 1000, worst * 1000)
        self._due = now + self.interval
        self._handle = loop.call_later(self.interval, self._fired, loop)


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("ics.calls").setLevel(logging.INFO)


#: How often a node on a shared store looks for calls of nodes that died.
_RECOVERY_SWEEP_SECONDS = 60.0


#: Objects that lived this long (a call's state) are frozen out of the collector.
_FREEZE_SECONDS = 1.0
#: How often frozen objects are thawed, so a cycle among them is still reclaimed.
_THAW_SECONDS = 600.0


async def _keep_long_lived_frozen(every: float, thaw_every: float) -> None:
    """Full collections walk every live object, and live calls are most of them: a
    thousand calls made a pause of 0.1 s or more. Ended calls leave no reference
    cycles (their legs are unhooked), so reference counting frees them even when
    frozen; freezing what survived each second keeps full collections down to the
    last second's objects. A rare cycle frozen meanwhile waits for the next thaw."""
    loop = asyncio.get_running_loop()
    thawed = loop.time()
    while True:
        await asyncio.sleep(every)
        if loop.time() - thawed >= thaw_every:
            gc.unfreeze()
            thawed = loop.time()
        else:
            gc.freeze()


async def _recovery_sweeps(controller: Any, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await controller.recover()
        except Exception:  # the store may be down; the next sweep tries again
            logging.getLogger(__name__).warning("recovery sweep failed", exc_info=True)


def node_name(config: Any) -> str:
    """The node's name in the store: ``[node] id``, else host:port of its first SIP address."""
    if config.node.id:
        return str(config.node.id)
    _, _, port = config.sip.listen[0].rpartition(":")
    # Port 0 picks a free port at start: not a name the node would have again.
    return f"{socket.gethostname()}:{port if port != '0' else f'pid{os.getpid()}'}"


async def _start_takeover(config: Any, service: Any, controller: Any, metrics: Any) -> Any:
    """On a Redis store: settle this node's leftovers, take its lease, watch the others."""
    from accounts.redis.leases import NodeLeases
    from callcontrol.takeover import NodeTakeover, TakeoverMetrics

    node = node_name(config)
    service.node_id = node
    takeover = NodeTakeover(
        service, NodeLeases(service.store), node,
        renew_seconds=config.node.lease_renew_seconds, ttl_seconds=config.node.lease_ttl_seconds,
        metrics=TakeoverMetrics(metrics.registry, node, lambda: controller.connected_calls),
    )
    await takeover.start()
    return takeover


async def serve(config_path: str | Path, *, grace: float | None = None,
                http: bool = True) -> int:
    """Run until SIGINT/SIGTERM; return the exit status."""
    from api.app import create_app
    from api.metrics import Metrics
    from api.runner import open_account_service
    from api.server import make_server, parse_listen
    from callcontrol.app import CallController, ControllerSettings, trunks_from_config
    from settings.config import load_config

    setup_logging()
    config = load_config(Path(config_path))
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    settings = ControllerSettings.from_config(config)
    http_address = parse_listen(config.http.listen) if http else None
    metrics = Metrics()
    # A Redis store counts its outages in ics_store_errors_total.
    service = await open_account_service(config, metrics=metrics)
    realms = [f.trunk.digest.realm for f in config.facilities.values() if f.trunk.digest]
    controller = CallController(settings, service, trunks_from_config(config), metrics=metrics,
                                realm=realms[0] if realms else "ics")
    server: Any = None
    http_task: asyncio.Task[None] | None = None
    alert_task: asyncio.Task[None] | None = None
    takeover: Any = None
    try:
        # Calls a crash left connected are settled before new calls are taken.
        await controller.recover()
        if config.store.kind == "redis":
            takeover = await _start_takeover(config, service, controller, metrics)
        await controller.start()
        if http_address is not None:

            async def store_ready() -> bool:
                await service.store.is_empty()
                return True

            async def sip_ready() -> bool:
                return not controller.draining

            async def carrier_ready() -> bool:
                return controller.carrier_ready

            app = create_app(config, service, controller, metrics,
                             readiness={"store": store_ready, "sip": sip_ready,
                                        "carrier": carrier_ready})
            server = make_server(app, *http_address, handle_signals=False)
            http_task = asyncio.get_running_loop().create_task(server.serve())
            alerts = app.state.family_alerts
            if alerts is not None:
                alert_task = asyncio.get_running_loop().create_task(
                    alerts.run_forever())
        # Everything loaded so far lives as long as the process: keep the collector from
        # rescanning it. A full collection still walks every live call (~0.1 s with a
        # thousand calls up), stalling signalling and media meanwhile: make it ten times
        # rarer than the default; young objects are collected as usual.
        gc.collect()
        gc.freeze()
        gc.set_threshold(700, 10, 100)
        gc.callbacks.append(_CollectorWatch())
        listening = ", ".join(f"{t}:{h}:{p}" for t, h, p in controller.bound)
        print(f"ics serve: SIP on {listening}"
              + (f", HTTP on http://{http_address[0]}:{http_address[1]}/" if http_address else "")
              + " (Ctrl-C stops)", file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if http_task is not None:
            http_task.add_done_callback(lambda _t: stop.set())
        sweeper: asyncio.Task[None] | None = None
        if settings.shared_store:
            sweeper = loop.create_task(_recovery_sweeps(controller, _RECOVERY_SWEEP_SECONDS))
        freezer = loop.create_task(_keep_long_lived_frozen(_FREEZE_SECONDS, _THAW_SECONDS))
        lag_watch = LoopLagWatch()
        lag_watch.start(loop)
        await stop.wait()
        lag_watch.stop()
        freezer.cancel()
        if sweeper is not None:
            sweeper.cancel()
        if http_task is not None and http_task.done() and http_task.exception() is not None:
            raise http_task.exception()  # type: ignore[misc]
        wait = config.sip.shutdown_grace_seconds if grace is None else grace
        print(f"ics serve: stopping; {controller.active_calls} call(s) in progress may "
              f"finish within {wait:g} s", file=sys.stderr, flush=True)
        await controller.drain(wait)
        if takeover is not None:
            # Every call of this node is settled: no survivor need look for them.
            await takeover.stop(release=True)
            takeover = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        return 0
    finally:
        if alert_task is not None:
            alert_task.cancel()
        if takeover is not None:
            await takeover.stop(release=False)
        if server is not None:
            server.should_exit = True
        if http_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(http_task, 5)
        await controller.close()
        await service.store.close()
