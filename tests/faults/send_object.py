"""Send one JMS ObjectMessage (a serialized java.lang.String) to a topic, then exit.

Run in a child process (one JVM per process): ``python -m tests.faults.send_object URL TOPIC KIND``.
The credentials come from ``$AMQ_USERNAME`` / ``$AMQ_PASSWORD``; the message is persistent and
carries the string property ``faultkind=KIND`` so the checker can find it in the dead-letter file.
"""

from __future__ import annotations

import os
import sys

from bridge import jvm
from bridge.config import DEFAULT_JARS_DIR
from tests.faults.checker import KIND_HEADER


def main(url: str, topic: str, kind: str) -> int:
    jvm.ensure_jvm(jvm.classpath(DEFAULT_JARS_DIR, ("client",)))
    from jpype import JClass, JString

    factory = JClass("org.apache.activemq.ActiveMQConnectionFactory")(url)
    factory.setUserName(os.environ["AMQ_USERNAME"])
    factory.setPassword(os.environ["AMQ_PASSWORD"])
    connection = factory.createConnection()
    try:
        connection.start()
        session = connection.createSession(False, JClass("javax.jms.Session").AUTO_ACKNOWLEDGE)
        producer = session.createProducer(session.createTopic(topic))
        message = session.createObjectMessage(JString("x"))
        message.setStringProperty(KIND_HEADER, kind)
        producer.send(message, JClass("javax.jms.DeliveryMode").PERSISTENT, 4, 0)
    finally:
        connection.close()  # its threads are not daemons: an open connection keeps the JVM alive
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
