package org.amqbridge;

import java.util.Base64;
import java.util.Enumeration;
import java.util.Map;

import javax.jms.DeliveryMode;
import javax.jms.JMSException;
import javax.jms.Message;

/**
 * A message's properties as one JSON object, as amq-bridge's events carry them (bridge/properties.py):
 * the application properties, then JMSType and JMSCorrelationID (when set), JMSPriority,
 * JMSDeliveryMode ("PERSISTENT" / "NON_PERSISTENT") and JMSExpiration. A message with nothing
 * beyond the defaults (no property, no type, no correlation id, priority 4, no expiration) has none:
 * {@link #json} returns null, after a few field reads.
 *
 * <p>Values: booleans and numbers as JSON (a float as Java prints it, so 0.1f is 0.1), NaN and
 * infinities as strings, byte arrays in base64, anything else (a nested map or list) as its text.
 */
final class Properties {
    private Properties() {
    }

    static String json(Message message) throws JMSException {
        Map<String, Object> properties = null;
        Enumeration<?> names = null;
        if (message instanceof org.apache.activemq.command.Message) {
            org.apache.activemq.command.Message amq = (org.apache.activemq.command.Message) message;
            try {
                properties = amq.getProperties();  // an empty map, at once, when none were sent
            } catch (java.io.IOException exc) {
                throw (JMSException) new JMSException("cannot read the message's properties: " + exc).initCause(exc);
            }
        } else {
            names = message.getPropertyNames();
        }
        String type = message.getJMSType();
        String correlation = message.getJMSCorrelationID();
        int priority = message.getJMSPriority();
        long expiration = message.getJMSExpiration();
        boolean any = (properties != null && !properties.isEmpty()) || (names != null && names.hasMoreElements());
        if (!any && type == null && correlation == null && priority == Message.DEFAULT_PRIORITY && expiration == 0) {
            return null;
        }
        StringBuilder out = new StringBuilder(128).append('{');
        if (properties != null) {
            for (Map.Entry<String, Object> entry : properties.entrySet()) {
                member(out, entry.getKey(), entry.getValue());
            }
        } else if (names != null) {
            while (names.hasMoreElements()) {
                String name = String.valueOf(names.nextElement());
                member(out, name, message.getObjectProperty(name));
            }
        }
        if (type != null) {
            member(out, "JMSType", type);
        }
        if (correlation != null) {
            member(out, "JMSCorrelationID", correlation);
        }
        member(out, "JMSPriority", priority);
        member(out, "JMSDeliveryMode",
               message.getJMSDeliveryMode() == DeliveryMode.PERSISTENT ? "PERSISTENT" : "NON_PERSISTENT");
        member(out, "JMSExpiration", expiration);
        return out.append('}').toString();
    }

    private static void member(StringBuilder out, String name, Object value) {
        if (out.length() > 1) {
            out.append(',');
        }
        string(out, name);
        out.append(':');
        if (value == null) {
            out.append("null");
        } else if (value instanceof Boolean || value instanceof Byte || value instanceof Short
                   || value instanceof Integer || value instanceof Long) {
            out.append(value);
        } else if (value instanceof Float || value instanceof Double) {
            double number = ((Number) value).doubleValue();
            if (Double.isNaN(number) || Double.isInfinite(number)) {
                string(out, value.toString());
            } else {
                out.append(value);  // Float.toString: 0.1f is 0.1, as STOMP's text of it
            }
        } else if (value instanceof byte[]) {
            string(out, Base64.getEncoder().encodeToString((byte[]) value));
        } else {
            string(out, String.valueOf(value));
        }
    }

    private static void string(StringBuilder out, String text) {
        out.append('"');
        for (int i = 0, n = text.length(); i < n; i++) {
            char c = text.charAt(i);
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(text.charAt(i + 1))) {
                out.append(c).append(text.charAt(++i));
            } else if (Character.isSurrogate(c)) {
                out.append('\ufffd');  // unpaired: not representable in UTF-8
            } else {
                out.append(c);
            }
        }
        out.append('"');
    }
}
