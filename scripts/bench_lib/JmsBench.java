// The plain Java side of scripts/bench: a JMS consumer (the baseline amq-bridge is compared with)
// and a fast producer (preloading the queue, or publishing at a fixed rate for the latency phase).
//
//   java JmsBench consume URL QUEUE COUNT ACK CLIENT_ID [LATENCY_FILE]
//       ACK: individual (ActiveMQSession.INDIVIDUAL_ACKNOWLEDGE, acknowledge() each message)
//            or client200 (CLIENT_ACKNOWLEDGE, acknowledge() every 200th message and the last).
//       Prints "ready MS" once subscribed, "first MS" at the first message, "done MS COUNT" after
//       the last acknowledgement (MS: System.currentTimeMillis()). With LATENCY_FILE, writes one
//       line per message: milliseconds from JMSTimestamp to just after its acknowledgement.
//   java JmsBench produce URL QUEUE BODIES_FILE COUNT persistent|nonpersistent RATE
//       Sends COUNT TextMessages, the lines of BODIES_FILE in turn; RATE 0: as fast as possible.
//
// Credentials come from the environment (AMQ_USERNAME, AMQ_PASSWORD), never the command line.
// Every connection is closed in finally: its non-daemon threads would keep the JVM alive.

import java.io.BufferedWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.List;
import java.util.concurrent.locks.LockSupport;
import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Session;
import javax.jms.TextMessage;
import org.apache.activemq.ActiveMQConnectionFactory;
import org.apache.activemq.ActiveMQSession;

public final class JmsBench {
    /** A consumer that gets nothing for this long gives up (every wait of the bench is bounded). */
    private static final long IDLE_TIMEOUT_MS = 60_000;

    public static void main(String[] args) throws Exception {
        try {
            if (args.length >= 6 && args[0].equals("consume")) {
                consume(args[1], args[2], Integer.parseInt(args[3]), args[4], args[5], args.length > 6 ? args[6] : null);
            } else if (args.length == 7 && args[0].equals("produce")) {
                produce(args[1], args[2], args[3], Integer.parseInt(args[4]), args[5].equals("persistent"),
                        Double.parseDouble(args[6]));
            } else {
                System.err.println("usage: JmsBench consume URL QUEUE COUNT individual|client200 CLIENT_ID [LATENCY_FILE]"
                        + " | produce URL QUEUE BODIES_FILE COUNT persistent|nonpersistent RATE");
                System.exit(2);
            }
        } catch (Exception e) {
            System.err.println("JmsBench: " + e);
            System.exit(1);
        }
        System.exit(0);
    }

    private static ActiveMQConnectionFactory factory(String url) {
        ActiveMQConnectionFactory factory = new ActiveMQConnectionFactory(url);
        String user = System.getenv("AMQ_USERNAME");
        if (user != null && !user.isEmpty()) {
            factory.setUserName(user);
            factory.setPassword(System.getenv("AMQ_PASSWORD"));
        }
        return factory;
    }

    private static void consume(String url, String queue, int count, String ack, String clientId, String latencyFile)
            throws Exception {
        boolean individual = ack.equals("individual");
        if (!individual && !ack.equals("client200")) {
            throw new IllegalArgumentException("ACK must be individual or client200, not " + ack);
        }
        ActiveMQConnectionFactory factory = factory(url);
        factory.getPrefetchPolicy().setQueuePrefetch(1000);  // the default, and amq-bridge's default
        int[] latencies = latencyFile != null ? new int[count] : null;
        Connection connection = factory.createConnection();
        try {
            connection.setClientID(clientId);
            connection.start();
            Session session = connection.createSession(false,
                    individual ? ActiveMQSession.INDIVIDUAL_ACKNOWLEDGE : Session.CLIENT_ACKNOWLEDGE);
            MessageConsumer consumer = session.createConsumer(session.createQueue(queue));
            System.out.println("ready " + System.currentTimeMillis());
            System.out.flush();
            long chars = 0;  // the bodies are read, as any real consumer would
            for (int i = 0; i < count; i++) {
                Message message = consumer.receive(IDLE_TIMEOUT_MS);
                if (message == null) {
                    throw new IllegalStateException("no message for " + IDLE_TIMEOUT_MS / 1000 + " s after " + i);
                }
                if (i == 0) {
                    System.out.println("first " + System.currentTimeMillis());
                    System.out.flush();
                }
                chars += ((TextMessage) message).getText().length();
                if (individual || (i + 1) % 200 == 0 || i + 1 == count) {
                    message.acknowledge();
                }
                if (latencies != null) {
                    latencies[i] = (int) (System.currentTimeMillis() - message.getJMSTimestamp());
                }
            }
            System.out.println("done " + System.currentTimeMillis() + " " + count + " " + chars);
            System.out.flush();
        } finally {
            connection.close();
        }
        if (latencies != null) {
            try (BufferedWriter out = Files.newBufferedWriter(Paths.get(latencyFile), StandardCharsets.UTF_8)) {
                for (int latency : latencies) {
                    out.write(Integer.toString(latency));
                    out.write('\n');
                }
            }
        }
    }

    private static void produce(String url, String queue, String bodiesFile, int count, boolean persistent, double rate)
            throws Exception {
        List<String> bodies = Files.readAllLines(Paths.get(bodiesFile), StandardCharsets.UTF_8);
        ActiveMQConnectionFactory factory = factory(url);
        factory.setUseAsyncSend(true);  // persistent sends would otherwise wait for the store, one by one
        Connection connection = factory.createConnection();
        try {
            connection.start();
            Session session = connection.createSession(false, Session.AUTO_ACKNOWLEDGE);
            MessageProducer producer = session.createProducer(session.createQueue(queue));
            producer.setDeliveryMode(persistent ? DeliveryMode.PERSISTENT : DeliveryMode.NON_PERSISTENT);
            long started = System.nanoTime();
            for (int i = 0; i < count; i++) {
                if (rate > 0) {
                    long due = started + (long) (i * 1e9 / rate);
                    long wait;
                    while ((wait = due - System.nanoTime()) > 0) {
                        LockSupport.parkNanos(wait);
                    }
                }
                producer.send(session.createTextMessage(bodies.get(i % bodies.size())));
            }
            double seconds = (System.nanoTime() - started) / 1e9;
            System.out.println("sent " + count + " " + seconds);
        } finally {
            connection.close();  // waits for the broker's answer, so every message above is on the queue
        }
    }
}
