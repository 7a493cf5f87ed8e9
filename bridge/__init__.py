"""amq-bridge: real-time events from Apache ActiveMQ, delivered reliably to where they are needed.

The library API is :func:`open` (iterate over events, ``event.ack()`` each) and :func:`run`
(a function called with each batch), see :mod:`bridge.api`; for asyncio, :func:`aopen` and
:func:`arun`, see :mod:`bridge.aio`.
"""

from typing import Any

from bridge.api import Stream, open, run
from bridge.event import Event

__version__ = "0.1.0"
__all__ = ["AsyncStream", "Event", "Stream", "aopen", "arun", "open", "run", "__version__"]
_ASYNC = ("AsyncStream", "aopen", "arun")


def __getattr__(name: str) -> Any:
    # the asyncio API is imported on first use: the command does not pay for importing asyncio
    if name in _ASYNC:
        from bridge import aio

        return getattr(aio, name)
    raise AttributeError(f"module 'bridge' has no attribute {name!r}")
