"""Exponential backoff with jitter, for reconnecting and for retrying a failing sink."""

from __future__ import annotations

import random
from typing import Callable

from bridge.config import ReconnectConfig


class Backoff:
    """Delays of ``initial_delay * 2**n``, capped at ``max_delay``, each drawn in [50%, 100%].

    The random half spreads a fleet of bridges so they do not retry in lockstep.

    Args:
        policy: Delays and the attempt limit.
        forever: Ignore ``policy.max_attempts`` (a sink is retried until it recovers).
        rng: Source of randomness in [0, 1), replaceable in tests.
    """

    def __init__(self, policy: ReconnectConfig, *, forever: bool = False,
                 rng: Callable[[], float] = random.random) -> None:
        self.policy, self.forever, self.rng = policy, forever, rng
        self.attempts = 0

    def next_delay(self) -> float | None:
        """The delay before the next attempt, or ``None`` when the attempts are used up."""
        self.attempts += 1
        if not self.forever and self.policy.max_attempts and self.attempts > self.policy.max_attempts:
            return None
        base = min(self.policy.max_delay, self.policy.initial_delay * 2 ** min(self.attempts - 1, 30))
        return base * (0.5 + self.rng() / 2)

    def reset(self) -> None:
        """Start again from ``initial_delay`` (after a success)."""
        self.attempts = 0
