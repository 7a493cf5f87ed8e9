"""The asyncio API: consume from coroutines without blocking the event loop.

::

    import bridge

    async with bridge.aopen("config.yaml") as stream:    # a path, a dict or a BridgeConfig
        async for event in stream:                       # or: await stream.receive(timeout=1.0)
            await store(event.data)
            event.ack()                                  # never blocks the loop

    await bridge.arun("config.yaml", handler)            # async def handler(events: list[Event])

Both drive the runner of :func:`bridge.open` / :func:`bridge.run` (reconnect, de-duplication,
dead-lettering) on a thread of its own; the JVM and stomp.py keep their own threads too. A batch
reaches the loop in one ``loop.call_soon_threadsafe`` call, ``ack()`` only takes a lock the
runner holds for microseconds, and closing waits for the runner on a future, so the loop is never
made to wait on the broker. One limit: the first openwire connection of a process starts the JVM,
which holds Python's global lock for a fraction of a second (about 0.1-0.5 s seen here), so every
Python thread of the process, the loop too, stalls that long once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections import deque
from typing import Any, Awaitable, Callable

from bridge.api import IN_CODE, BackgroundRunner, ConfigLike, as_config, as_error
from bridge.config import BridgeConfig
from bridge.errors import BridgeError
from bridge.event import Event
from bridge.runner import Runner
from bridge.sinks.handler import HandlerSink
from bridge.stats import Stats
from bridge.transports import Hooks

log = logging.getLogger(__name__)

#: Seconds ``close`` waits for the runner to close its connection.
CLOSE_TIMEOUT = 30.0


class AsyncStream:
    """Events of a subscription for ``async for``; see :func:`aopen`.

    Events are handed over one batch at a time (at most ``batch_size``); the batch is
    acknowledged to the broker once every event of it was ``ack()``-ed. Events not acked when
    the stream closes (the end of ``async with``, or the consuming task cancelled) are
    delivered again.
    """

    def __init__(self, config: BridgeConfig, hooks: Hooks | None = None) -> None:
        self._config, self._hooks = config, hooks
        self._items: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: BackgroundRunner | None = None
        self._ended: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._done = False

    @property
    def stats(self) -> Stats:
        """The runner's counters (empty ones before the stream started)."""
        return self._background.runner.stats if self._background else Stats()

    async def start(self) -> "AsyncStream":
        """Start consuming (done by ``async with``)."""
        if self._background is None:
            self._loop = asyncio.get_running_loop()
            self._ended = self._loop.create_future()
            self._background = BackgroundRunner(self._config, self._hooks, self._hand_over, self._finished)
            self._background.start()
        return self

    # -- on the runner's thread

    def _hand_over(self, events: list[Event]) -> None:
        self._to_loop(self._arrive, events)

    def _finished(self, error: BaseException | None) -> None:
        self._to_loop(self._end, error)

    def _to_loop(self, callback: Callable[[Any], None], argument: Any) -> None:
        assert self._loop is not None and self._background is not None
        try:
            self._loop.call_soon_threadsafe(callback, argument)
        except RuntimeError:  # the loop is closed: nobody will ack, so let the runner end
            self._background.stop()

    # -- on the loop

    def _arrive(self, events: list[Event]) -> None:
        self._items.extend(events)
        self._ready.set()

    def _end(self, error: BaseException | None) -> None:
        self._error = error
        assert self._ended is not None
        if not self._ended.done():
            self._ended.set_result(None)
        self._ready.set()

    async def receive(self, timeout: float | None = None) -> Event | None:
        """The next event, or ``None`` after ``timeout`` seconds without one.

        Raises:
            BridgeError: The runner stopped on an error (credentials refused, ...).
            StopAsyncIteration: The stream was closed.
        """
        if not self._items and not self._ended_seen():
            try:
                async with asyncio.timeout(timeout):
                    while not self._items and not self._ended_seen():
                        self._ready.clear()
                        await self._ready.wait()
            except TimeoutError:
                return None
        if self._items:
            return self._items.popleft()
        if self._done:
            raise StopAsyncIteration
        self._done = True
        if self._error is not None:
            raise as_error(self._error)
        raise StopAsyncIteration

    def _ended_seen(self) -> bool:
        if self._ended is None:
            raise BridgeError("the stream is not started: use async with bridge.aopen(...)")
        return self._ended.done()

    def __aiter__(self) -> "AsyncStream":
        return self

    async def __anext__(self) -> Event:
        event = await self.receive()
        assert event is not None  # no timeout: an event or the end
        return event

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop consuming, and wait until the runner has closed its connection.

        Events handed out but not acked are delivered again later (to this connection id or
        another consumer of the queue).
        """
        if self._background is None or self._ended is None:
            return
        self._background.stop()
        self._items.clear()
        if not self._ended.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._ended), timeout)
            except TimeoutError:
                log.warning("the stream's runner did not end within %.0f s; leaving it to finish", timeout)

    async def __aenter__(self) -> "AsyncStream":
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def aopen(config: ConfigLike, *, hooks: Hooks | None = None) -> AsyncStream:
    """A stream of the configured subscription's events; use it with ``async with``.

    Several streams may run in one loop, each with its own connection id. ``hooks`` are called
    on the runner's thread: reach the loop from them with ``loop.call_soon_threadsafe``.
    """
    return AsyncStream(as_config(config), hooks)


async def arun(config: ConfigLike, handler: Callable[[Any], Awaitable[object] | object], *,
               hooks: Hooks | None = None, max_events: int | None = None,
               idle_timeout: float | None = None) -> Stats:
    """Consume, awaiting ``handler`` on this loop with each batch; returns when stopped or done.

    As :func:`bridge.run`: a batch is acknowledged when the handler's coroutine returns; when it
    raises, the batch is passed again after a backoff. When the config's sink is a ``handler``
    sink, its ``mode`` (``event``: the handler takes one event) and ``max_attempts`` (then the
    events are dead-lettered) apply; otherwise batches are retried until they succeed. Cancel
    the awaiting task to stop: the handler call in progress is cancelled too and its batch stays
    unacknowledged (delivered again).
    """
    cfg = as_config(config)
    loop = asyncio.get_running_loop()
    calls: set[asyncio.Task[Any]] = set()  # handler calls in progress, all on the loop
    stopping = False

    async def call(argument: Any) -> None:
        if stopping:  # scheduled by the runner just before the cancellation
            raise asyncio.CancelledError
        task = asyncio.current_task()
        assert task is not None
        calls.add(task)
        try:
            result = handler(argument)
            if inspect.isawaitable(result):
                await result
        finally:
            calls.discard(task)

    def on_runner_thread(argument: Any) -> None:
        asyncio.run_coroutine_threadsafe(call(argument), loop).result()

    sink_config = cfg.sink if cfg.sink.type == "handler" else IN_CODE
    runner = Runner(cfg, sink=HandlerSink(sink_config, on_runner_thread), hooks=hooks,
                    max_events=max_events, idle_timeout=idle_timeout)
    done = _run_on_thread(runner, loop)
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        stopping = True
        runner.stop()
        for task in list(calls):
            task.cancel()
        try:
            await asyncio.wait_for(done, CLOSE_TIMEOUT)
        except BaseException:  # ending anyway; the cancellation is what the caller sees
            pass
        raise


def _run_on_thread(runner: Runner, loop: asyncio.AbstractEventLoop) -> "asyncio.Future[Stats]":
    """``runner.run()`` on a thread of its own; its result (or error) arrives as a future of ``loop``."""
    done: asyncio.Future[Stats] = loop.create_future()

    def settle(result: Stats | None, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(as_error(error) if not isinstance(error, Exception) else error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        result: Stats | None = None
        error: BaseException | None = None
        try:
            result = runner.run()
        except BaseException as exc:
            error = exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop is closed: nobody awaits the result any more
            pass

    threading.Thread(target=work, daemon=True,
                     name=f"amq-bridge-{runner.config.subscription.connection_id}").start()
    return done
