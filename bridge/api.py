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
transport uses it as it is.
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
    """Passes each batch to the stream's reader and waits until every event of it is acked."""

    name = "stream"

    def __init__(self, out: "queue.Queue[object]") -> None:
        super().__init__(IN_CODE)
        self.out, self.pending = out, []
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
        for event in handed:
            self.out.put(event)
        with self.cond:
            while self.unacked and not self.cancelled:
                self.cond.wait()
            if self.cancelled and self.unacked:
                raise SinkError("stream closed before its events were acknowledged")

    def _ack(self, event: Event) -> None:
        with self.cond:
            self.unacked.discard(id(event))
            self.cond.notify_all()

    def cancel(self) -> None:
        with self.cond:
            self.cancelled = True
            self.cond.notify_all()


class Stream:
    """Events of a subscription, consumed on a background thread; see :func:`open`."""

    def __init__(self, config: BridgeConfig, hooks: Hooks | None = None) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self._sink = _HandOff(self._queue)
        self._runner = Runner(config, sink=self._sink, hooks=hooks)
        self._thread = threading.Thread(target=self._work, name="amq-bridge-stream", daemon=True)
        self._error: BaseException | None = None
        self._done = False

    @property
    def stats(self) -> Stats:
        """The runner's counters."""
        return self._runner.stats

    def _work(self) -> None:
        try:
            self._runner.run()
        except BaseException as exc:  # handed to the reader
            self._error = exc
        finally:
            self._queue.put(_END)

    def start(self) -> "Stream":
        """Start consuming (done by ``with``)."""
        self._thread.start()
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
                raise self._error if isinstance(self._error, BridgeError) else BridgeError(str(self._error))
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
        self._runner.stop()
        self._sink.cancel()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> "Stream":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open(config: ConfigLike, *, hooks: Hooks | None = None) -> Stream:  # noqa: A001 - the API's name
    """A stream of the configured subscription's events; use it as a context manager."""
    return Stream(as_config(config), hooks)
