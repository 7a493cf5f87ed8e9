"""A bounded memory of recently delivered message ids, to keep redeliveries out of the sink.

The memory is seeded, before each subscription, from what the sink, the dead-letter file and
(with ``workers: N``) the other workers' files already hold (:class:`Seeder`), so a redelivery
after a crash of the bridge is recognised as well as one after a reconnect.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from bridge.errors import SinkError

if TYPE_CHECKING:
    from bridge.config import BridgeConfig
    from bridge.event import Event

log = logging.getLogger(__name__)

#: Reads the newest message ids of one store, newest first: ``source(limit) -> ids``.
IdSource = Callable[[int], list[str]]


def window_size(config: "BridgeConfig") -> int:
    """How many message ids the runner remembers: ``dedupe_window``, or more when needed to cover
    what the broker can redeliver (each worker's prefetch plus the batches in hand: the one being
    flushed, the one received meanwhile and up to two received ahead); 0 when off.
    """
    if not config.dedupe_window:
        return 0
    prefetch = max(config.openwire.prefetch, config.stomp.prefetch)
    return max(config.dedupe_window, (prefetch + 4 * config.batch_size) * config.workers)


class RecentIds:
    """At least the last ``size`` message ids added (at most twice as many); ``size`` 0 remembers nothing.

    Two generations of sets: ids go into the young one; when it holds ``size``, it becomes the
    old one and the previous old one is dropped. Adding and looking up are then set operations
    done in C, about a tenth of the cost of keeping an exact window in order.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._young: set[str] = set()
        self._old: set[str] = set()

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._young or message_id in self._old

    def __len__(self) -> int:
        return len(self._young | self._old)

    def unseen(self, events: Sequence[Event]) -> list[Event]:
        """The events whose message id is not remembered, in order."""
        young, old = self._young, self._old
        ids = [event.message_id for event in events]
        if young.isdisjoint(ids) and old.isdisjoint(ids):  # the common case, checked in C
            return list(events)
        return [event for event, message_id in zip(events, ids) if message_id not in young and message_id not in old]

    def add(self, message_ids: Iterable[str]) -> None:
        """Remember ``message_ids``; the oldest generation goes once the young one is full."""
        if not self.size:
            return
        self._young.update(message_ids)
        if len(self._young) >= self.size:
            self._old, self._young = self._young, set()

    def seed(self, message_ids: Iterable[str]) -> None:
        """Remember ids delivered before (read from a store) as the oldest generation: they are
        forgotten once ``size`` new ids were added, and never push newer ones out."""
        if self.size:
            self._old.update(message_ids)


class Seeder:
    """Fills a :class:`RecentIds` from stores, each read for the window's size of newest ids.

    Args:
        window: The memory to fill.
        own: This process's sink and dead-letter file.
        peers: The other workers' files (``workers: N``), which a redelivery may come from.
    """

    def __init__(self, window: RecentIds, own: Sequence[IdSource], peers: Sequence[IdSource] = ()) -> None:
        self.window, self.own, self.peers = window, tuple(own), tuple(peers)

    def seed(self) -> None:
        """Read every store (before a subscription).

        Raises:
            SinkError: A store cannot be read (the runner retries).
        """
        if not self.window.size:
            return
        started = time.monotonic()
        count = self._read(self.own + self.peers)
        log.info("de-duplication window: %d message id(s) of earlier deliveries read in %.3f s (window %d)",
                 count, time.monotonic() - started, self.window.size)

    def recheck(self, fresh: list[Event]) -> list[Event]:
        """Of events not in the window, those no peer holds either: a batch with redelivered
        events makes the peers' files be read again first (another worker may have written them
        before it died, and the broker handed them to this one)."""
        if not self.peers or not any(event.redelivered for event in fresh):
            return fresh
        try:
            self._read(self.peers)
        except SinkError as exc:
            log.warning("cannot read another worker's file (%s); its redeliveries may be written twice", exc)
            return fresh
        return self.window.unseen(fresh)

    def _read(self, sources: Sequence[IdSource]) -> int:
        count = 0
        for source in sources:
            ids = source(self.window.size)
            self.window.seed(ids)
            count += len(ids)
        return count
