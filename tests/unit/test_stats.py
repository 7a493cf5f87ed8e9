"""Event ages at the sink's commit: histogram, last value, lag and the readiness rule."""

from __future__ import annotations

import time

from bridge.event import Event
from bridge.stats import AGE_BUCKETS, Stats

NOW = 1_700_000_000.0


def events(*ages: float | None) -> list[Event]:
    """Events whose broker timestamps are ``ages`` seconds before NOW (None: no timestamp)."""
    return [Event(b"{}", {}, f"id{i}", "queue:q", timestamp=None if age is None else int((NOW - age) * 1000))
            for i, age in enumerate(ages)]


def le(stats: Stats, bound: float) -> int:
    return stats.ages_le[AGE_BUCKETS.index(bound)]


def test_ages_fill_cumulative_buckets_and_the_sum() -> None:
    stats = Stats()
    stats.record_ages(events(0.003, 0.2, 0.2, 4.0, None), NOW)
    assert stats.ages_count == 4  # the event without a timestamp is not counted
    assert (le(stats, 0.005), le(stats, 0.1), le(stats, 0.25), le(stats, 2.5), le(stats, 5.0)) == (1, 1, 3, 3, 4)
    assert le(stats, 3600.0) == 4
    assert abs(stats.ages_sum - 4.403) < 1e-6
    assert abs(stats.event_age - 0.003) < 1e-6  # the newest event of the batch
    stats.record_ages(events(1.0), NOW)
    assert stats.ages_count == 5 and le(stats, 1.0) == 4 and abs(stats.event_age - 1.0) < 1e-6


def test_out_of_order_and_future_timestamps() -> None:
    stats = Stats()
    stats.record_ages(events(30.0, -2.0, 0.5), NOW)  # -2: the broker's clock is 2 s ahead
    assert stats.ages_count == 3 and le(stats, 0.005) == 1 and le(stats, 0.5) == 2 and le(stats, 30.0) == 3
    assert abs(stats.ages_sum - 30.5) < 1e-6  # the future one counts as 0 in the sum
    assert abs(stats.event_age + 2.0) < 1e-6  # the gauge shows the offset as it is


def test_lag_and_behind() -> None:
    stats = Stats()
    assert stats.lag() is None and not stats.behind(1.0)
    stats.took(events(0.01, 0.0), limit=500)  # a batch in hand, received 10 ms after publication
    assert stats.waiting and stats.lag(NOW) is not None and abs(stats.lag(NOW) - 0.01) < 1e-6
    stats.record_ages(events(0.01, 0.0), NOW)
    stats.in_hand = 0
    assert not stats.waiting and stats.lag() == stats.event_age
    old = time.time() - 10
    stats.took([Event(b"{}", {}, "x", "queue:q", timestamp=int(old * 1000))], limit=500)
    assert stats.behind(5.0) and not stats.behind(None) and not stats.behind(60.0)
    stats.in_hand = 0  # delivered: nothing waits, however old the last event was
    stats.event_age = 10.0
    assert not stats.behind(5.0)
    stats.took(events(*[0.0] * 3), limit=3)  # a full batch: more wait behind it
    stats.in_hand = 0
    assert stats.waiting and stats.behind(5.0)
    stats.took([], limit=3)
    assert not stats.waiting


def test_stats_line_shows_the_age() -> None:
    stats = Stats()
    assert " age=- " in stats.line()
    stats.record_ages(events(0.25), NOW)
    assert " age=0.250s " in stats.line()


def test_the_runner_records_ages_at_the_commit_of_each_batch(tmp_path, monkeypatch) -> None:
    import dataclasses
    import json

    import bridge.connection
    from bridge.config import parse_config
    from bridge.runner import Runner
    from tests.unit.fakes import MemorySink, MemoryTransport

    published = int((time.time() - 2.0) * 1000)  # two seconds before the run

    class Stamped(MemoryTransport):
        def receive(self, max_events, timeout):
            return [dataclasses.replace(e, timestamp=published) for e in super().receive(max_events, timeout)]

    monkeypatch.setattr(bridge.connection, "create_transport",
                        lambda name, config, hooks=None: Stamped(config, hooks, [json.dumps({"n": i}).encode()
                                                                                 for i in range(10)]))
    config = parse_config({"profile": "generic", "subscription": {"destination": "queue:q", "connection_id": "c"},
                           "batch_size": 4, "stats_interval": 0}, env={})
    stats = Runner(config, sink=MemorySink(), max_events=10).run()
    assert stats.ages_count == 10 and le(stats, 1.0) == 0 and le(stats, 2.5) == 10
    assert 2.0 <= stats.event_age < 2.5 and 20.0 <= stats.ages_sum < 25.0
    assert stats.in_hand == 0  # nothing in hand once the run is over
