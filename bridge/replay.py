"""``amq-bridge replay``: dead-lettered events back into the sink, once they can be delivered.

Every record of the dead-letter file whose body now decodes within the configured limits
(``max_message_bytes``) becomes an event again, with its original message id, and goes to the
configured sink through the same sink code as ``run`` and the same de-duplication: the window
is seeded from the sink (and, with ``workers: N``, the other workers' files), so an event the
sink already holds is only taken out of the dead-letter file, never written again.

Batch by batch (``batch_size`` records): write, flush, and only then take the batch's records
out of the dead-letter file (:func:`bridge.deadletter.remove_lines`: a rewrite to a temporary
file, fsync, rename, under the file's lock). A crash mid-replay leaves the records of the batch
in hand in the file, and the sink either without them or with them; the next replay finds the
latter in the sink's newest ids. Into a ``handler`` sink (which cannot tell what it holds) that
batch is delivered again: at least once.

Records that cannot be delivered (the body still is not JSON, is too large, or the record is
not one the bridge wrote) stay in the file as they are, with their reason.

With ``workers: N``, each worker's dead-letter file is replayed into that worker's sink.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
from pathlib import Path
from typing import Sequence

from bridge.config import BridgeConfig
from bridge.deadletter import read_lines, remove_lines
from bridge.dedupe import IdSource, RecentIds, window_size
from bridge.errors import BridgeError, ConfigError, MessageError, SinkError
from bridge.event import Event, decode_body
from bridge.sinks import create_sink

log = logging.getLogger(__name__)

#: Records that stay are named one by one up to this many; the rest are counted.
NAMED = 10


@dataclasses.dataclass
class ReplayResult:
    """What one replay of one dead-letter file did."""

    path: Path
    #: Events written to the sink.
    replayed: int = 0
    #: Records whose event the sink already held: taken out of the file, not written.
    already: int = 0
    #: Records left in the file (not deliverable, or everything in a dry run).
    remaining: int = 0

    def summary(self, dry_run: bool = False) -> str:
        if dry_run:
            return (f"would replay {self.replayed} event(s) to the sink, {self.already} already in it; "
                    f"{self.remaining} would remain in {self.path}")
        return (f"replayed {self.replayed} event(s) to the sink, {self.already} already in it; "
                f"{self.remaining} remain in {self.path}")


def record_event(line: bytes, max_bytes: int) -> Event:
    """The event a dead-letter record holds, decoded anew.

    Raises:
        MessageError: Why it still cannot be delivered.
    """
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise MessageError(f"not a dead-letter record (not JSON: {exc})") from exc
    if not isinstance(record, dict) or not isinstance(record.get("message_id"), str):
        raise MessageError("not a dead-letter record (no message_id)")
    try:
        body = base64.b64decode(record.get("body_base64") or "", validate=True)
    except (binascii.Error, TypeError) as exc:
        raise MessageError(f"body_base64 is not base64 ({exc})") from exc
    data = decode_body(body, max_bytes)
    headers = record.get("headers")
    stamp = record.get("timestamp")
    return Event(body=body, data=data, message_id=record["message_id"],
                 destination=str(record.get("destination") or ""),
                 timestamp=stamp if isinstance(stamp, int) else None,
                 redelivered=bool(record.get("redelivered")), transport=str(record.get("transport") or ""),
                 headers={str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {})


def replay(config: BridgeConfig, dead_letter: Path | None = None, *, dry_run: bool = False) -> list[ReplayResult]:
    """Replay the dead-letter file(s) of ``config`` (or ``dead_letter``) into its sink.

    Raises:
        ConfigError: No dead-letter file is configured or given.
        BridgeError: The sink failed; what was replayed before stays replayed, the rest stays.
    """
    if config.workers > 1:
        from bridge.workers import peer_sources, worker_config

        # what the other workers' sinks hold is delivered; what their dead-letter files hold is not
        jobs = [(worker_config(config, i), peer_sources(config, i, dead_letters=False))
                for i in range(1, config.workers + 1)]
        if dead_letter is not None:
            jobs = jobs[:1]
    else:
        jobs = [(config, [])]
    results = []
    for job, peers in jobs:
        path = dead_letter or job.dead_letter
        if path is None:
            raise ConfigError("no dead_letter file is configured; give --dead-letter FILE", key="dead_letter")
        results.append(_replay_file(job, path, peers, dry_run))
    return results


def _replay_file(config: BridgeConfig, path: Path, peers: Sequence[IdSource], dry_run: bool) -> ReplayResult:
    result = ReplayResult(path)
    lines = read_lines(path)
    ready: list[tuple[bytes, Event]] = []
    stays: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            ready.append((line, record_event(line, config.max_message_bytes)))
        except MessageError as exc:
            stays.append(str(exc))
    for reason in stays[:NAMED]:
        log.info("stays in %s: %s", path.name, reason)
    if len(stays) > NAMED:
        log.info("stays in %s: %d more record(s)", path.name, len(stays) - NAMED)
    result.remaining = len(stays)
    if not ready:
        return result
    sink = create_sink(config.sink)
    if not dry_run:
        sink.open()
    try:
        # the sink's newest ids, enough to hold everything a crashed replay could have written
        window = RecentIds(window_size(config) + len(ready))
        try:
            for source in (sink.recent_ids, *peers):
                window.seed(source(window.size))
        except SinkError as exc:
            raise BridgeError(f"cannot read what the sink holds: {exc}; nothing was replayed") from exc
        for start in range(0, len(ready), config.batch_size):
            batch = ready[start:start + config.batch_size]
            seen: set[str] = set()  # the same message set aside twice is replayed once
            fresh = [e for e in window.unseen([event for _, event in batch])
                     if not (e.message_id in seen or seen.add(e.message_id))]
            if dry_run:
                result.replayed += len(fresh)
                result.already += len(batch) - len(fresh)
                result.remaining += len(batch)
                window.add(e.message_id for e in fresh)
                continue
            if fresh:
                try:
                    sink.write(fresh)
                    sink.flush()
                except SinkError as exc:
                    raise BridgeError(f"{exc}; {result.summary()} (the rest stays)") from exc
                window.add(e.message_id for e in fresh)
            result.remaining = remove_lines(path, [line for line, _ in batch])
            result.replayed += len(fresh)
            result.already += len(batch) - len(fresh)
    finally:
        if not dry_run:
            sink.close()
    return result
