"""amq-bridge: real-time events from Apache ActiveMQ, delivered reliably to where they are needed."""

__version__ = "0.1.0"
