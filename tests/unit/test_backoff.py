"""Backoff delays and the recent-ids window."""

from __future__ import annotations

from bridge.backoff import Backoff
from bridge.config import ReconnectConfig
from bridge.dedupe import RecentIds
from bridge.event import Event


def test_delays_double_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    top = Backoff(ReconnectConfig(initial_delay=1, max_delay=10), rng=lambda: 0.999999)
    bottom = Backoff(ReconnectConfig(initial_delay=1, max_delay=10), rng=lambda: 0.0)
    highs = [round(top.next_delay(), 3) for _ in range(6)]
    lows = [bottom.next_delay() for _ in range(6)]
    assert highs == [1, 2, 4, 8, 10, 10]
    assert lows == [0.5, 1, 2, 4, 5, 5]


def test_attempts_run_out_unless_forever() -> None:
    policy = ReconnectConfig(initial_delay=1, max_delay=1, max_attempts=2)
    limited, forever = Backoff(policy), Backoff(policy, forever=True)
    assert [limited.next_delay() is None for _ in range(3)] == [False, False, True]
    assert all(forever.next_delay() is not None for _ in range(10))
    limited.reset()
    assert limited.next_delay() is not None


def test_recent_ids_remember_the_last_size_and_forget_older() -> None:
    recent = RecentIds(3)
    added: list[str] = []
    for i in range(20):
        batch = [f"id{i}-{j}" for j in range(i % 4 + 1)]
        recent.add(batch)
        added += batch
        assert all(x in recent for x in added[-3:])  # at least the last `size`
        assert len(recent) <= 6  # at most twice as many
    assert "id0-0" not in recent
    events = [Event(body=b"{}", data={}, message_id=x, destination="queue:q") for x in (added[-1], "new")]
    assert [e.message_id for e in recent.unseen(events)] == ["new"]
    off = RecentIds(0)
    off.add(["a"])
    assert "a" not in off
