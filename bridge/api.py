"""The library API: consume from your own Python code.

::

    import bridge

    with bridge.open("config.yaml") as stream:      # a path, a dict or a BridgeConfig
        for event in stream:
            handle(event.data)
            event.ack()

    bridge.run("config.yaml", handler)             # handler(events: list[Event]) per batch

Both drive the same runner as ``amq-bridge run``: reconnect with backoff, the dead-letter file,
de-duplication. With ``open``, the runner works on a thread of its own and hands over one batch
at a time; the batch is acknowledged to the broker once every event of it was ``ack()``-ed, so
ack every event you take. Nothing here installs signal handlers or configures logging: that is
the host application's business. In a process whose JVM is already running, the openwire
transport uses it as it is. For asyncio, :mod:`bridge.aio` builds on :class:`BackgroundRunner`.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from bridge.config import BridgeConfig, HandlerSinkConfig, load_config, parse_config
from bridge.errors import BridgeError, SinkError
from bridge.event import Event
from bridge.runner import Runner
from bridge.sinks.base import Sink
from bridge.sinks.handler import HandlerSink
from bridge.stats import Stats
from bridge.transports import Hooks

ConfigLike = BridgeConfig | Mapping[str, Any] | str | os.PathLike[str]
#: The handler sink of a function given in code (no ``handler`` name to validate): each batch
#: retried until it succeeds.
IN_CODE = HandlerSinkConfig.model_construct(type="handler", handler="", mode="batch", max_attempts=0)
_END = object()


def as_config(config: ConfigLike) -> BridgeConfig:
    """A :class:`BridgeConfig` from a path, a mapping (as in config.yaml) or a config itself."""
    if isinstance(config, BridgeConfig):
        return config
    if isinstance(config, Mapping):
        return parse_config(dict(config), source="<dict>")
    return load_config(Path(config))


def run(config: ConfigLike, handler: Callable[[list[Event]], object], *, hooks: Hooks | None = None,
        max_events: int | None = None, idle_timeout: float | None = None) -> Stats:
    """Consume on this thread, calling ``handler`` with each batch; returns when stopped or done.

    A batch is acknowledged when ``handler`` returns; if it raises, the same batch is passed again
    after a backoff. When the config's sink is a ``handler`` sink, its ``mode`` (``event``: the
    function takes one event) and ``max_attempts`` (then dead-lettered) apply; otherwise batches
    are retried until they succeed. Stop it from another thread by raising out of a hook, or use
    ``max_events`` / ``idle_timeout``; for a stoppable consumer, use :func:`open`.
    """
    cfg = as_config(config)
    sink_config = cfg.sink if cfg.sink.type == "handler" else IN_CODE
    return Runner(cfg, sink=HandlerSink(sink_config, handler), hooks=hooks,
                  max_events=max_events, idle_timeout=idle_timeout).run()


class _HandOff(Sink):
    """Passes each batch to ``hand_over`` and waits until every event of it is acked."""

    name = "stream"

    def __init__(self, hand_over: Callable[[list[Event]], None]) -> None:
        super().__init__(IN_CODE)
        self.hand_over, self.pending = hand_over, []
        self.cond = threading.Condition()
        self.unacked: set[int] = set()
        self.cancelled = False

    def write(self, events: Sequence[Event]) -> None:
        self.pending.extend(events)

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        handed = [dataclasses.replace(e, acker=self._ack) for e in batch]
        with self.cond:
            self.unacked = {id(e) for e in handed}
        self.hand_over(handed)
        with self.cond:
            while self.unacked and not self.cancelled:
                self.cond.wait()
            if self.cancelled and self.unacked:
                raise SinkError("stream closed before its events were acknowledged")

    def _ack(self, event: Event) -> None:
        # called by the consumer (an event loop, for bridge.aopen): the lock is held only for
        # microseconds, and the runner is woken once per batch, not once per event
        with self.cond:
            self.unacked.discard(id(event))
            if not self.unacked:
                self.cond.notify_all()

    def cancel(self) -> None:
        with self.cond:
            self.cancelled = True
            self.cond.notify_all()


class BackgroundRunner:
    """A :class:`Runner` on a thread of its own that hands each batch to a consumer.

    The consumer side of :func:`open` and :func:`bridge.aopen`: ``hand_over(events)`` is called on
    the runner's thread with each batch (events whose ``ack()`` works); the runner waits until
    every event of it was acked, then acknowledges the batch to the broker. ``finished(error)`` is
    called once on that thread when the runner has ended and closed its connection (``error``:
    what ended it, or ``None``).
    """

    def __init__(self, config: BridgeConfig, hooks: Hooks | None, hand_over: Callable[[list[Event]], None],
                 finished: Callable[[BaseException | None], None]) -> None:
        self.sink = _HandOff(hand_over)
        self.runner = Runner(config, sink=self.sink, hooks=hooks)
        self._finished = finished
        self.thread = threading.Thread(target=self._work, daemon=True,
                                       name=f"amq-bridge-{config.subscription.connection_id}")

    def _work(self) -> None:
        error: BaseException | None = None
        try:
            self.runner.run()
        except BaseException as exc:  # handed to the consumer
            error = exc
        finally:
            self._finished(error)

    def start(self) -> None:
        """Start the runner's thread."""
        self.thread.start()

    def stop(self) -> None:
        """Ask the runner to end; a batch not fully acked stays unacknowledged on the broker."""
        self.runner.stop()
        self.sink.cancel()


def as_error(exc: BaseException) -> BridgeError:
    """What ended a runner, as the BridgeError the consumer sees."""
    return exc if isinstance(exc, BridgeError) else BridgeError(str(exc))


class Stream:
    """Events of a subscription, consumed on a background thread; see :func:`open`."""

    def __init__(self, config: BridgeConfig, hooks: Hooks | None = None) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self._background = BackgroundRunner(config, hooks, self._hand_over, self._finished)
        self._error: BaseException | None = None
        self._done = False

    @property
    def stats(self) -> Stats:
        """The runner's counters."""
        return self._background.runner.stats

    def _hand_over(self, events: list[Event]) -> None:
        for event in events:
            self._queue.put(event)

    def _finished(self, error: BaseException | None) -> None:
        self._error = error
        self._queue.put(_END)

    def start(self) -> "Stream":
        """Start consuming (done by ``with``)."""
        self._background.start()
        return self

    def receive(self, timeout: float | None = None) -> Event | None:
        """The next event, or ``None`` after ``timeout`` seconds without one.

        Raises:
            BridgeError: The runner stopped on an error (credentials refused, ...).
            StopIteration: The stream was closed.
        """
        if self._done:
            raise StopIteration
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self._done = True
            if self._error is not None:
                raise as_error(self._error)
            raise StopIteration
        return item  # type: ignore[return-value]

    def __iter__(self) -> Iterator[Event]:
        while True:
            try:
                event = self.receive()
            except StopIteration:
                return
            if event is not None:
                yield event

    def close(self, timeout: float = 30.0) -> None:
        """Stop consuming; events handed out but not acked are delivered again later."""
        self._background.stop()
        thread = self._background.thread
        if thread.is_alive():
            thread.join(timeout)

    def __enter__(self) -> "Stream":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open(config: ConfigLike, *, hooks: Hooks | None = None) -> Stream:  # noqa: A001 - the API's name
    """A stream of the configured subscription's events; use it as a context manager."""
    return Stream(as_config(config), hooks)
