package org.amqbridge.test;

import java.util.LinkedHashMap;
import java.util.Map;

import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.Destination;
import javax.jms.MessageProducer;
import javax.jms.Session;
import javax.jms.TextMessage;

import org.apache.activemq.ActiveMQConnectionFactory;

/**
 * A plain JMS producer (test only) sending TextMessages that carry properties of every JMS type,
 * the way a Java feed publishes them. Compiled by the tests at run time.
 *
 * <p>Usage: {@code PropertyProducer URL queue:NAME|topic:NAME START COUNT}, credentials from the
 * environment (AMQ_USERNAME, AMQ_PASSWORD). Message
 * {@code seq} (START .. START+COUNT-1) has body {@code {"seq":N}}, persistent, priority 7,
 * JMSType "order", JMSCorrelationID "corr-N", and the properties: kind ("open" for even seq,
 * "closed" for odd), region "eu", n (int N), flag (boolean: seq even), big (long 2^40), ratio
 * (double 0.25), small (float 0.1f), tiny (byte 7), short (short 300), meta (a map {a=1}, which
 * ActiveMQ allows and JSON gets as text). Exits 0 once the broker has every message.
 */
public final class PropertyProducer {
    private PropertyProducer() {
    }

    public static void main(String[] args) throws Exception {
        String[] target = args[1].split(":", 2);
        int start = Integer.parseInt(args[2]);
        int count = Integer.parseInt(args[3]);
        ActiveMQConnectionFactory factory = new ActiveMQConnectionFactory(args[0]);
        Connection connection = factory.createConnection(System.getenv("AMQ_USERNAME"), System.getenv("AMQ_PASSWORD"));
        try {
            Session session = connection.createSession(false, Session.AUTO_ACKNOWLEDGE);
            Destination destination = target[0].equals("topic") ? session.createTopic(target[1])
                    : session.createQueue(target[1]);
            MessageProducer producer = session.createProducer(destination);
            producer.setDeliveryMode(DeliveryMode.PERSISTENT);  // a persistent send waits for the broker
            producer.setPriority(7);
            Map<String, Object> meta = new LinkedHashMap<>();
            meta.put("a", 1);
            for (int seq = start; seq < start + count; seq++) {
                TextMessage message = session.createTextMessage("{\"seq\":" + seq + "}");
                message.setJMSType("order");
                message.setJMSCorrelationID("corr-" + seq);
                message.setStringProperty("kind", seq % 2 == 0 ? "open" : "closed");
                message.setStringProperty("region", "eu");
                message.setIntProperty("n", seq);
                message.setBooleanProperty("flag", seq % 2 == 0);
                message.setLongProperty("big", 1L << 40);
                message.setDoubleProperty("ratio", 0.25);
                message.setFloatProperty("small", 0.1f);
                message.setByteProperty("tiny", (byte) 7);
                message.setShortProperty("short", (short) 300);
                message.setObjectProperty("meta", meta);
                producer.send(message);
            }
        } finally {
            connection.close();  // its threads are not daemons: without this the JVM would not exit
        }
    }
}
