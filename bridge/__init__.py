"""amq-bridge: real-time events from Apache ActiveMQ, delivered reliably to where they are needed.

The library API is :func:`open` (iterate over events, ``event.ack()`` each) and :func:`run`
(a function called with each batch); see :mod:`bridge.api`.
"""

from bridge.api import Stream, open, run
from bridge.event import Event

__version__ = "0.1.0"
__all__ = ["Event", "Stream", "open", "run", "__version__"]
