package org.amqbridge.test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;

import javax.jms.Connection;
import javax.jms.JMSException;

import org.apache.activemq.ActiveMQConnectionFactory;

/**
 * A connection factory of the kind openwire.connection_factory names (test only): ActiveMQ's own,
 * which appends a line to the file named by the system property amqbridge.test.marker each time
 * it makes a connection, so a test can tell it was used. Compiled by the test at run time.
 */
public class MarkingConnectionFactory extends ActiveMQConnectionFactory {
    @Override
    public Connection createConnection() throws JMSException {
        mark("createConnection broker=" + getBrokerURL().replaceAll("\\?.*", ""));
        return super.createConnection();
    }

    @Override
    public Connection createConnection(String userName, String password) throws JMSException {
        mark("createConnection(user, password)");
        return super.createConnection(userName, password);
    }

    private static void mark(String line) {
        String path = System.getProperty("amqbridge.test.marker");
        if (path == null) {
            return;
        }
        try {
            Files.write(Paths.get(path), (line + "\n").getBytes(StandardCharsets.UTF_8),
                        StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        } catch (IOException e) {
            throw new IllegalStateException("cannot write marker " + path, e);
        }
    }
}
