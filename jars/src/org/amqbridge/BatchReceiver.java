package org.amqbridge;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;

import javax.jms.BytesMessage;
import javax.jms.JMSException;
import javax.jms.MapMessage;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.ObjectMessage;
import javax.jms.StreamMessage;
import javax.jms.TextMessage;

/**
 * amq-bridge's OpenWire helper: receives a batch of messages and acknowledges a batch, each in
 * one call from Python (JPype), so that an event costs a few Python/Java crossings per batch
 * instead of about nine per message, and (cumulative mode) a batch one acknowledgement. The messages stay here, keyed by a delivery tag; Python
 * only sees plain values. Not thread-safe: one consumer thread drives it (as it drives the
 * consumer).
 */
public final class BatchReceiver {
    /** Kinds of message, in {@link Batch#kinds}. */
    public static final int TEXT = 0, BYTES = 1, OBJECT = 2, OTHER = 3, BAD_TEXT = 4;
    /** The layout of {@link Batch}; the Python side refuses a jar of another version. */
    public static final int VERSION = 2;

    private final MessageConsumer consumer;
    private final boolean cumulative;
    private final HashMap<Long, Message> unacked = new HashMap<>();
    /** Cumulative mode: an acked message whose acknowledge() waits for the rest to be acked. */
    private Message covering;
    private long nextTag = 1;

    /** For a consumer of an INDIVIDUAL_ACKNOWLEDGE session: one acknowledgement per message. */
    public BatchReceiver(MessageConsumer consumer) {
        this(consumer, false);
    }

    /**
     * @param cumulative the consumer's session is CLIENT_ACKNOWLEDGE, where one acknowledge()
     *     acknowledges every message the session delivered so far: it is called once every
     *     message received here was acked by the caller (one broker command per batch), never
     *     while one is still outstanding.
     */
    public BatchReceiver(MessageConsumer consumer, boolean cumulative) {
        this.consumer = consumer;
        this.cumulative = cumulative;
    }

    /** One batch of messages, as parallel arrays of length {@code count}. */
    public static final class Batch {
        public int count;
        /** Delivery tags are {@code firstTag .. firstTag + count - 1}, in order. */
        public long firstTag;
        /** Every JMSMessageID, concatenated; message i ends at {@code idEnds[i]} (UTF-16 units). */
        public String ids;
        public int[] idEnds;
        public long[] timestamps;
        public boolean[] redelivered;
        public int[] kinds;
        /** Every body, concatenated: UTF-8 of a text, the bytes of a BytesMessage, nothing for
         *  others; message i ends at {@code bodyEnds[i]}. */
        public byte[] bodies;
        public int[] bodyEnds;
        /** Null when no message has properties; else per message null or its properties as a
         *  JSON object (see {@link Properties}). */
        public String[] properties;
        /** Null when no message is OTHER; else per message null or the JMS interface's name. */
        public String[] kindNames;
    }

    /**
     * Wait up to {@code timeoutMs} for a first message, then take up to {@code max} in all that
     * are ready. On an exception the messages taken so far are dropped unacknowledged (the
     * broker redelivers them).
     */
    public Batch receive(int max, long timeoutMs) throws JMSException {
        List<Message> messages = new ArrayList<>(Math.min(Math.max(max, 1), 1024));
        Message message = consumer.receive(Math.max(1, timeoutMs));
        while (message != null) {
            messages.add(message);
            if (messages.size() >= max) {
                break;
            }
            message = consumer.receiveNoWait();
        }
        int n = messages.size();
        Batch batch = new Batch();
        batch.count = n;
        batch.firstTag = nextTag;
        batch.idEnds = new int[n];
        batch.timestamps = new long[n];
        batch.redelivered = new boolean[n];
        batch.kinds = new int[n];
        batch.bodyEnds = new int[n];
        StringBuilder ids = new StringBuilder(n * 48);
        byte[][] bodies = new byte[n][];
        int total = 0;
        for (int i = 0; i < n; i++) {
            message = messages.get(i);
            String id = message.getJMSMessageID();
            ids.append(id == null ? "" : id);
            batch.idEnds[i] = ids.length();
            batch.timestamps[i] = message.getJMSTimestamp();
            batch.redelivered[i] = message.getJMSRedelivered();
            byte[] body = new byte[0];
            int kind;
            if (message instanceof TextMessage) {
                String text = ((TextMessage) message).getText();
                kind = text != null && hasUnpairedSurrogate(text) ? BAD_TEXT : TEXT;
                if (text != null) {
                    body = text.getBytes(StandardCharsets.UTF_8);  // '?' for an unpaired surrogate
                }
            } else if (message instanceof BytesMessage) {
                BytesMessage bytes = (BytesMessage) message;
                body = new byte[(int) bytes.getBodyLength()];
                bytes.readBytes(body);
                kind = BYTES;
            } else if (message instanceof ObjectMessage) {
                kind = OBJECT;  // never deserialized: getObject() would run the sender's classes
            } else {
                kind = OTHER;
                if (batch.kindNames == null) {
                    batch.kindNames = new String[n];
                }
                batch.kindNames[i] = message instanceof MapMessage ? "MapMessage"
                        : message instanceof StreamMessage ? "StreamMessage" : "Message";
            }
            batch.kinds[i] = kind;
            bodies[i] = body;
            total += body.length;
            batch.bodyEnds[i] = total;
            String properties = Properties.json(message);
            if (properties != null) {
                if (batch.properties == null) {
                    batch.properties = new String[n];
                }
                batch.properties[i] = properties;
            }
        }
        batch.ids = ids.toString();
        batch.bodies = new byte[total];
        int at = 0;
        for (byte[] body : bodies) {
            System.arraycopy(body, 0, batch.bodies, at, body.length);
            at += body.length;
        }
        for (int i = 0; i < n; i++) {
            unacked.put(nextTag++, messages.get(i));
        }
        return batch;
    }

    /**
     * Acknowledge each message of {@code tags} individually, in order, and forget it. Unknown
     * tags are skipped (the caller checks them). If an acknowledgement fails, the rest of
     * {@code tags} are forgotten too and the exception is thrown.
     *
     * @return how many were acknowledged
     */
    public int ackAll(long[] tags) throws JMSException {
        if (cumulative) {
            return ackCumulative(tags);
        }
        int done = 0;
        try {
            for (long tag : tags) {
                Message message = unacked.remove(tag);
                if (message != null) {
                    message.acknowledge();
                    done++;
                }
            }
        } finally {
            if (done < tags.length) {
                forget(tags);
            }
        }
        return done;
    }

    /**
     * Cumulative mode: mark {@code tags} acked; when nothing received is outstanding any more,
     * acknowledge them all (and those acked before) with one acknowledge().
     */
    private int ackCumulative(long[] tags) throws JMSException {
        int done = 0;
        for (long tag : tags) {
            Message message = unacked.remove(tag);
            if (message != null) {
                covering = message;
                done++;
            }
        }
        if (covering != null && unacked.isEmpty()) {
            Message message = covering;
            covering = null;
            message.acknowledge();
        }
        return done;
    }

    /** Forget the messages of {@code tags} without acknowledging them (the broker redelivers). */
    public void forget(long[] tags) {
        for (long tag : tags) {
            unacked.remove(tag);
        }
    }

    /** Forget every message held. */
    public void clear() {
        unacked.clear();
        covering = null;
    }

    /** How many messages are held for acknowledgement. */
    public int pending() {
        return unacked.size();
    }

    private static boolean hasUnpairedSurrogate(String text) {
        for (int i = 0, n = text.length(); i < n; i++) {
            char c = text.charAt(i);
            if (Character.isHighSurrogate(c)) {
                if (i + 1 < n && Character.isLowSurrogate(text.charAt(i + 1))) {
                    i++;
                } else {
                    return true;
                }
            } else if (Character.isLowSurrogate(c)) {
                return true;
            }
        }
        return false;
    }
}
