"""The runner: takes events from a transport, delivers them to a sink, then acknowledges them.

An event is acknowledged only after the sink's ``flush`` returned (or, for an event that cannot
be decoded, after the dead-letter file was fsynced). With a sink whose flush runs outside Python
(``Sink.background_flush``: sqlite, postgres) and a transport whose acknowledgements name exactly
their events, a batch is flushed on the runner's flush thread while the next one is received,
and acknowledged once that flush returned, before the next is written. Whatever fails in between
leaves it unacknowledged, so the broker delivers it again:

* a lost connection (or a connection id still held by the broker) is retried with exponential
  backoff and jitter, forever by default, on the runner's own thread;
* a failing sink pauses consumption and the same batch is written again with backoff until it
  succeeds (never NACKed: a STOMP NACK would send it straight to the broker's DLQ), or, when
  ``sink.max_attempts`` is set, until that many attempts failed: then the undelivered events are
  written to the dead-letter file with the error as the reason, and acknowledged;
* redeliveries of events already in the sink are recognised by message id and only acknowledged:
  the window of recent ids (:mod:`bridge.dedupe`) is seeded before each subscription from the
  sink, the dead-letter file and the other workers' files, so this holds across crashes too.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

from bridge.backoff import Backoff
from bridge.config import BridgeConfig
from bridge.connection import open_transport
from bridge.deadletter import DeadLetterFile
from bridge.dedupe import IdSource, RecentIds, Seeder, window_size
from bridge.errors import (AuthenticationError, SinkError, SubscriptionError, TransportError,
                           TransportUnavailableError)
from bridge.event import Event
from bridge.sinks import Sink, create_sink
from bridge.stats import Stats
from bridge.transports import Hooks, Transport

log = logging.getLogger(__name__)
stats_log = logging.getLogger("bridge.stats")

#: How long one receive call may block, so a stop request is seen promptly.
POLL_SECONDS = 0.5
#: A condition that goes on (reconnecting, a failing sink) is logged again at most this often.
REPEAT_LOG_SECONDS = 60.0
#: Errors no retry can fix: refused credentials, no usable transport at all, a refused subscription.
FATAL = (AuthenticationError, TransportUnavailableError, SubscriptionError)


class _Stopped(Exception):
    """A stop was requested while a batch was still undelivered; it stays unacknowledged."""


class _GaveUp(Exception):
    """The attempts allowed for one batch are used up; ``args[0]`` is the last SinkError."""


@dataclass(slots=True)
class _Batch:
    """A batch received: all its events (acknowledged together), those not delivered before
    (``fresh``), and of those the ones to store and the ones to set aside."""

    events: Sequence[Event]
    fresh: list[Event]
    good: list[Event]
    bad: list[Event]

    @property
    def ids(self) -> set[str]:
        return {e.message_id for e in self.fresh}


@dataclass(slots=True)
class _Flight:
    """A batch whose flush runs on the flush thread."""

    batch: _Batch
    future: Future[None]
    started: float


class _RunnerHooks(Hooks):
    """Logs each state change once, keeps the stats current, and forwards to the user's hooks."""

    def __init__(self, stats: Stats, user: Hooks | None) -> None:
        self.stats, self.user = stats, user or Hooks()
        #: Set while the runner closes the transport itself, so that is not reported as a loss.
        self.closing = False

    def on_connecting(self, transport: str, endpoint: str) -> None:
        log.debug("%s: connecting to %s", transport, endpoint)
        self.user.on_connecting(transport, endpoint)

    def on_connected(self, transport: str, endpoint: str) -> None:
        self.stats.transport, self.stats.connected = transport, True
        log.info("%s: connected to %s", transport, endpoint)
        self.user.on_connected(transport, endpoint)

    def on_disconnected(self, transport: str, reason: str) -> None:
        self.stats.connected = False
        log.log(logging.INFO if self.closing else logging.WARNING, "%s: disconnected: %s", transport, reason)
        self.user.on_disconnected(transport, reason)

    def on_fallback(self, failed: str, reason: str, next_transport: str) -> None:
        self.user.on_fallback(failed, reason, next_transport)


class Runner:
    """Consume the configured subscription into a sink until stopped.

    Args:
        config: The bridge configuration.
        sink: A sink to use instead of the configured one.
        hooks: Lifecycle callbacks of the caller.
        max_events: Stop after this many events were delivered or set aside.
        idle_timeout: Stop after this many seconds without an event.
        peers: Readers of the other workers' newest message ids (``workers: N``).
    """

    def __init__(
        self,
        config: BridgeConfig,
        *,
        sink: Sink | None = None,
        hooks: Hooks | None = None,
        max_events: int | None = None,
        idle_timeout: float | None = None,
        peers: Sequence[IdSource] = (),
    ) -> None:
        self.config = config
        self.sink = sink or create_sink(config.sink)
        self.stats = Stats()
        self.hooks = _RunnerHooks(self.stats, hooks)
        self.max_events = max_events
        self.idle_timeout = idle_timeout
        self.dead_letter = DeadLetterFile(config.dead_letter)
        self.recent = RecentIds(window_size(config))
        self.seeder = Seeder(self.recent, (self.sink.recent_ids, self.dead_letter.recent_ids), peers)
        self._stop = threading.Event()
        self._last_event = time.monotonic()
        self._flusher: ThreadPoolExecutor | None = None  # the flush thread (sink.background_flush)

    def stop(self) -> None:
        """Ask the run to end after the batch in hand; safe from signal handlers and threads."""
        self._stop.set()

    def run(self) -> Stats:
        """Consume until stopped, idle or done; returns the final counters.

        Raises:
            BridgeError: Credentials refused, no transport usable, reconnect attempts used up.
        """
        self._retry("sink open", self.sink.open)
        try:
            while not self._stop.is_set():
                transport = self._connect()
                if transport is None:
                    break
                try:
                    subscription = self.config.subscription
                    destination = subscription.destination
                    self._retry("reading the sink's recent message ids", self.seeder.seed)
                    options = {key: value for key, value in (("selector", subscription.selector),
                                                             ("durable_name", subscription.durable_name)) if value}
                    transport.subscribe(destination, **options)  # a plain queue: the one-argument call
                    log.info("subscribed to %s%s as connection id %r via %s", destination,
                             f" (durable subscription {subscription.durable_name!r})" if subscription.durable else "",
                             subscription.connection_id, transport.name)
                    self._last_event = time.monotonic()  # idle time counts from the subscription
                    self._loop(transport)
                    break
                except FATAL:
                    raise
                except TransportError as exc:
                    log.warning("%s: %s; reconnecting", transport.name, exc)
                    self.stats.reconnects += 1
                finally:
                    self.hooks.closing = True
                    transport.close()
                    self.hooks.closing = False
                    self.stats.connected = False
        except _Stopped:
            pass
        finally:
            if self._flusher is not None:
                self._flusher.shutdown()
                self._flusher = None
            try:
                self.sink.close()
            finally:
                self.dead_letter.close()
                stats_log.info(self.stats.line())
        return self.stats

    def _idle(self) -> bool:
        if self.idle_timeout is not None and time.monotonic() - self._last_event >= self.idle_timeout:
            log.info("no event for %.0f s; stopping", self.idle_timeout)
            return True
        return False

    def _connect(self) -> Transport | None:
        """Open a transport, retrying with backoff; ``None`` when stopped first."""
        backoff, last_log = Backoff(self.config.reconnect), 0.0
        while not self._stop.is_set() and not self._idle():
            try:
                return open_transport(self.config, self.hooks)
            except FATAL:
                raise
            except TransportError as exc:
                delay = backoff.next_delay()
                if delay is None:
                    raise TransportError(f"gave up after {backoff.attempts - 1} attempts: {exc}") from exc
                now = time.monotonic()
                if now - last_log >= REPEAT_LOG_SECONDS:
                    log.warning("%s; retrying in %.1f s (attempt %d)", exc, delay, backoff.attempts)
                    last_log = now
                self._stop.wait(delay)
        return None

    def _retry(self, what: str, action: Callable[[], None], max_attempts: int = 0,
               failed: SinkError | None = None) -> None:
        """Run ``action`` until it succeeds, with backoff; ``failed``: a first attempt made already failed so.

        Raises:
            _Stopped: Stopped while still failing.
            _GaveUp: ``max_attempts`` (if not 0) attempts failed.
        """
        backoff, last_log = Backoff(self.config.reconnect, forever=True), 0.0
        while True:
            try:
                if failed is not None:
                    failed, exc = None, failed
                    raise exc
                action()
                if backoff.attempts:
                    log.info("%s succeeded again after %d failures", what, backoff.attempts)
                    self.stats.sink_healthy = True
                return
            except SinkError as exc:
                if max_attempts and backoff.attempts + 1 >= max_attempts:
                    log.warning("%s failed %d times: %s; setting the events aside", what, max_attempts, exc)
                    raise _GaveUp(exc) from exc
                self.stats.sink_healthy = False
                delay = backoff.next_delay() or 0.0
                now = time.monotonic()
                if now - last_log >= REPEAT_LOG_SECONDS:
                    log.warning("%s failed: %s; nothing is acknowledged, retrying in %.1f s", what, exc, delay)
                    last_log = now
                if self._stop.wait(delay):
                    log.warning("stopping with a batch undelivered; the broker will deliver it again")
                    raise _Stopped from exc

    def _loop(self, transport: Transport) -> None:
        """Receive and deliver until stopped, idle or done.

        When the sink flushes in the background and the transport's acknowledgements are
        independent, a batch is flushed on the flush thread while the next one is received; it
        is acknowledged once its flush returned, before the next batch is written. A batch in
        flight when the loop fails is waited for and left unacknowledged.
        """
        stats, interval = self.stats, self.config.stats_interval
        next_stats = time.monotonic() + interval
        overlap = self.sink.background_flush and transport.independent_acks
        if overlap:
            log.info("%s sink: each batch is flushed while the next is received", self.sink.name)
        flying: _Flight | None = None
        try:
            while not self._stop.is_set():
                limit, held = self.config.batch_size, len(flying.batch.events) if flying else 0
                if self.max_events is not None:
                    limit = min(limit, self.max_events - stats.handled - held)
                    if limit <= 0:
                        break
                events = transport.receive(limit, 0.0 if flying else POLL_SECONDS)
                stats.took(events, limit)
                stats.in_hand += held
                now = time.monotonic()
                if interval and now >= next_stats:
                    stats_log.info(stats.line())
                    next_stats = now + interval
                batch = None
                if events:
                    self._last_event = now
                    batch = self._sort(events, flying.batch.ids if flying else ())
                if flying is not None:
                    done, flying = flying, None
                    self._land(transport, done)
                if batch is not None:
                    if overlap and batch.good:
                        flying = self._launch(batch)
                    else:
                        self._store(batch)
                        self._finish(transport, batch)
                elif not events and self._idle():
                    break
            if flying is not None:
                done, flying = flying, None
                self._land(transport, done)
        finally:
            if flying is not None:
                self._abandon(flying)

    def _sort(self, events: Sequence[Event], flying: frozenset[str] | set[str] = frozenset()) -> _Batch:
        """Count a batch received and split it: redeliveries of what was delivered (or is being
        flushed: ``flying``), good events, and those set aside."""
        stats = self.stats
        stats.received += len(events)
        fresh = self.recent.unseen(events) if self.recent.size else list(events)
        if flying and not flying.isdisjoint(e.message_id for e in fresh):
            fresh = [e for e in fresh if e.message_id not in flying]
        if self.seeder.peers and fresh:
            fresh = self.seeder.recheck(fresh)
        stats.duplicates += len(events) - len(fresh)
        good = [e for e in fresh if e.problem is None]
        bad = [e for e in fresh if e.problem is not None] if len(good) < len(fresh) else []
        return _Batch(events, fresh, good, bad)

    def _launch(self, batch: _Batch) -> _Flight:
        """Write a batch's good events and start their flush on the flush thread."""
        started = time.monotonic()
        try:
            self.sink.write(batch.good)
        except SinkError as exc:
            future: Future[None] = Future()
            future.set_exception(exc)
        else:
            if self._flusher is None:
                self._flusher = ThreadPoolExecutor(1, thread_name_prefix="sink-flush")
            future = self._flusher.submit(self.sink.flush)
        return _Flight(batch, future, started)

    def _land(self, transport: Transport, flight: _Flight) -> None:
        """Wait for a batch's flush (writing it again if that failed, as :meth:`_store` does),
        then acknowledge it."""
        try:
            flight.future.result()
        except SinkError as exc:
            self._store(flight.batch, exc, flight.started)
        else:
            self._stored(flight.batch, flight.started)
        self._finish(transport, flight.batch)

    def _abandon(self, flight: _Flight) -> None:
        """The loop failed with a batch in flight: wait for its flush and acknowledge nothing (the
        broker delivers it again); if it was stored, it counts as delivered and its redelivery is
        recognised."""
        if flight.future.exception() is None:
            self._stored(flight.batch, flight.started)
            self.recent.add(e.message_id for e in flight.batch.good)

    def _store(self, batch: _Batch, failed: SinkError | None = None, started: float | None = None) -> None:
        """Write and flush a batch's good events, retrying; the attempts allowed used up, set them
        aside instead. ``failed``: the error of a first attempt already made (since ``started``)."""
        good = batch.good
        if not good:
            return
        stats = self.stats

        def write() -> None:
            self.sink.write(good)
            self.sink.flush()
        started, attempts = started or time.monotonic(), getattr(self.sink.config, "max_attempts", 0)
        try:
            self._retry("sink write", write, attempts, failed)
        except _GaveUp as exc:
            left = list(self.sink.undelivered(good))
            stats.delivered += len(good) - len(left)
            reason = f"sink failed {attempts} times: {exc.args[0]}"
            batch.bad = [*batch.bad, *(dataclasses.replace(e, problem=reason) for e in left)]
            stats.sink_seconds += time.monotonic() - started
            stats.sink_writes += 1
        else:
            self._stored(batch, started)

    def _stored(self, batch: _Batch, started: float) -> None:
        stats = self.stats
        stats.record_ages(batch.good, time.time())
        stats.delivered += len(batch.good)
        stats.sink_seconds += time.monotonic() - started
        stats.sink_writes += 1

    def _finish(self, transport: Transport, batch: _Batch) -> None:
        """Set aside what is to be, remember the batch's ids, and acknowledge it."""
        stats, bad = self.stats, batch.bad
        if bad:
            self._retry("dead-letter write", lambda: self.dead_letter.put(bad))
            stats.dead_lettered += len(bad)
        self.recent.add(e.message_id for e in batch.fresh)
        transport.ack_many(batch.events)
        stats.acknowledged += len(batch.events)
        stats.in_hand = max(0, stats.in_hand - len(batch.events))
