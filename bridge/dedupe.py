"""A bounded memory of recently delivered message ids, to keep redeliveries out of the sink."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    from bridge.event import Event


class RecentIds:
    """The last ``size`` message ids added; ``size`` 0 remembers nothing."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def unseen(self, events: Sequence[Event]) -> list[Event]:
        """The events whose message id is not remembered, in order."""
        ids = self._ids
        return [event for event in events if event.message_id not in ids]

    def add(self, message_ids: Iterable[str]) -> None:
        """Remember ``message_ids``, forgetting the oldest beyond ``size``."""
        if not self.size:
            return
        ids = self._ids
        for message_id in message_ids:
            if message_id in ids:
                ids.move_to_end(message_id)
            else:
                ids[message_id] = None
        while len(ids) > self.size:
            ids.popitem(last=False)
