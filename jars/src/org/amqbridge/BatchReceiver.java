package org.amqbridge;

import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

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
 * instead of about nine per message. The messages stay here, keyed by a delivery tag; Python
 * only sees plain values.
 *
 * <p>Acknowledgement, by the consumer's session: INDIVIDUAL_ACKNOWLEDGE, one acknowledgement per
 * message; CLIENT_ACKNOWLEDGE, one per batch: <em>ranged</em> ({@link RangedAcks}: the run of
 * consecutive deliveries the caller acked, and nothing else), or, where ActiveMQ's client does
 * not allow that, <em>cumulative</em> (one acknowledge() once nothing received is outstanding).
 *
 * <p>Ranged, the receiver can also work ahead ({@link #startAhead}): a thread of its own
 * receives and builds the next batches while the caller writes this one, and the caller takes
 * them ({@link #take}); what the thread holds is never acknowledged, so it is redelivered if the
 * bridge stops. Without it, one thread drives receive() and the acknowledgements.
 */
public final class BatchReceiver {
    /** Kinds of message, in {@link Batch#kinds}. */
    public static final int TEXT = 0, BYTES = 1, OBJECT = 2, OTHER = 3, BAD_TEXT = 4;
    /** The layout of {@link Batch} and this API; the Python side refuses a jar of another version. */
    public static final int VERSION = 3;
    /** How long the thread working ahead blocks in one call, so a stop is seen. */
    private static final long AHEAD_POLL_MS = 100;

    private final MessageConsumer consumer;
    private final boolean cumulative;
    private final RangedAcks ranged;  // null unless ranged
    private final AtomicInteger interrupts;  // failover's interruption count, or null
    private final long lingerNanos;
    /** Individual and cumulative modes: the messages received and not acked yet. */
    private final HashMap<Long, Message> unacked = new HashMap<>();
    /** Cumulative mode: an acked message whose acknowledge() waits for the rest to be acked. */
    private Message covering;
    /** Ranged mode: every message received and not acknowledged yet, oldest first, and by tag. */
    private final ArrayDeque<Held> held = new ArrayDeque<>();
    private final HashMap<Long, Held> heldByTag = new HashMap<>();
    private long nextTag = 1;
    // Working ahead.
    private final ArrayBlockingQueue<Batch> ready = new ArrayBlockingQueue<>(1);
    private volatile boolean stopping;
    private volatile JMSException failure;
    private Thread ahead;

    /** A message of ranged mode, and what the caller did with it. */
    private static final class Held {
        static final byte OPEN = 0, ACKED = 1, FORGOTTEN = 2;
        final Message message;
        byte state = OPEN;

        Held(Message message) {
            this.message = message;
        }
    }

    /**
     * @param session the consumer's session when it is CLIENT_ACKNOWLEDGE (ranged if this client
     *     allows it, else cumulative); null for INDIVIDUAL_ACKNOWLEDGE
     * @param interrupts failover's count of interruptions, stamped on each batch (may be null)
     * @param lingerMs after the first message of a batch, wait up to this long for more
     */
    public BatchReceiver(MessageConsumer consumer, Object session, AtomicInteger interrupts, int lingerMs) {
        this.consumer = consumer;
        this.ranged = session == null ? null : RangedAcks.create(consumer, session);
        this.cumulative = session != null && ranged == null;
        this.interrupts = interrupts;
        this.lingerNanos = Math.max(0, lingerMs) * 1_000_000L;
    }

    /** Whether acknowledgements are ranged (see the class comment). */
    public boolean isRanged() {
        return ranged != null;
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
        /** Failover's interruption count read after the messages were received (0 without it). */
        public int epoch;
    }

    /**
     * Wait up to {@code timeoutMs} for a first message, then up to the linger time for more, and
     * take up to {@code max} in all. On an exception the messages taken so far are dropped
     * unacknowledged (the broker redelivers them). Not while working ahead: see {@link #take}.
     */
    public Batch receive(int max, long timeoutMs) throws JMSException {
        List<Message> messages = new ArrayList<>(Math.min(Math.max(max, 1), 1024));
        Message message = consumer.receive(Math.max(1, timeoutMs));
        long deadline = System.nanoTime() + lingerNanos;
        while (message != null) {
            messages.add(message);
            if (messages.size() >= max) {
                break;
            }
            message = consumer.receiveNoWait();
            if (message == null && lingerNanos > 0) {
                long leftMs = (deadline - System.nanoTime()) / 1_000_000L;
                if (leftMs >= 1) {  // receive(ms) has millisecond resolution
                    message = consumer.receive(leftMs);
                }
            }
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
        batch.epoch = interrupts == null ? 0 : interrupts.get();  // after the messages
        hold(messages);
        return batch;
    }

    private synchronized void hold(List<Message> messages) {
        for (Message message : messages) {
            if (ranged != null) {
                Held entry = new Held(message);
                held.addLast(entry);
                heldByTag.put(nextTag++, entry);
            } else {
                unacked.put(nextTag++, message);
            }
        }
    }

    /**
     * Ranged mode: start a thread that receives batches of up to {@code max} ahead of the caller,
     * at most two (one ready, one being built), for {@link #take}.
     */
    public synchronized void startAhead(int max) {
        if (ranged == null || ahead != null) {
            throw new IllegalStateException("working ahead needs ranged acknowledgements, once");
        }
        ahead = new Thread(() -> runAhead(max), "amq-bridge receive-ahead");
        ahead.setDaemon(true);
        ahead.start();
    }

    private void runAhead(int max) {
        try {
            while (!stopping) {
                Batch batch = receive(max, AHEAD_POLL_MS);
                while (batch.count > 0 && !stopping && !ready.offer(batch, AHEAD_POLL_MS, TimeUnit.MILLISECONDS)) {
                    // the caller is still busy with the batch before
                }
            }
        } catch (JMSException e) {
            failure = e;
        } catch (InterruptedException | RuntimeException e) {
            JMSException wrapped = new JMSException("receiving ahead failed: " + e);
            wrapped.initCause(e);
            failure = wrapped;
        }
    }

    /**
     * Working ahead: the next batch, waiting up to {@code timeoutMs} for one (an empty batch when
     * none came). Throws what ended the receiving thread, once the batches before are taken.
     */
    public Batch take(long timeoutMs) throws JMSException {
        Batch batch = ready.poll();
        if (batch == null && failure == null) {
            try {
                batch = ready.poll(Math.max(1, timeoutMs), TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (batch == null && failure != null) {
            throw failure;
        }
        if (batch == null) {
            batch = new Batch();
            batch.ids = "";
            batch.idEnds = batch.kinds = batch.bodyEnds = new int[0];
            batch.timestamps = new long[0];
            batch.redelivered = new boolean[0];
            batch.bodies = new byte[0];
        }
        return batch;
    }

    /** Stop working ahead, waiting up to {@code waitMs} for the thread; what it holds is not acked. */
    public void stopAhead(long waitMs) {
        stopping = true;
        Thread thread;
        synchronized (this) {
            thread = ahead;
        }
        if (thread != null) {
            try {
                thread.join(Math.max(1, waitMs));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        ready.clear();
    }

    /**
     * Acknowledge the messages of {@code tags} and forget them: individually; ranged, every run
     * of consecutive deliveries acked so far (each with one acknowledgement); cumulative, all
     * with one acknowledge() once nothing received is outstanding. Unknown tags are skipped (the
     * caller checks them). If an acknowledgement fails, the rest of {@code tags} are forgotten
     * too and the exception is thrown.
     *
     * @return how many were acknowledged (ranged and cumulative: accepted for acknowledgement)
     */
    public synchronized int ackAll(long[] tags) throws JMSException {
        if (ranged != null) {
            return ackRanged(tags);
        }
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

    /** As {@link #ackAll} for the tags {@code first .. first + count - 1} (one batch, mostly). */
    public synchronized int ackRange(long first, int count) throws JMSException {
        long[] tags = new long[Math.max(0, count)];
        for (int i = 0; i < tags.length; i++) {
            tags[i] = first + i;
        }
        return ackAll(tags);
    }

    private int ackRanged(long[] tags) throws JMSException {
        int done = 0;
        for (long tag : tags) {
            Held entry = heldByTag.remove(tag);
            if (entry != null) {
                entry.state = Held.ACKED;
                done++;
            }
        }
        settle();
        return done;
    }

    /** Ranged mode: acknowledge the runs of acked messages at the head; drop forgotten ones. */
    private void settle() throws JMSException {
        List<Message> run = new ArrayList<>();
        try {
            while (!held.isEmpty() && held.peekFirst().state != Held.OPEN) {
                Held entry = held.pollFirst();
                if (entry.state == Held.ACKED) {
                    run.add(entry.message);
                } else if (!run.isEmpty()) {
                    ranged.ack(run);
                    run.clear();
                }
            }
            if (!run.isEmpty()) {
                ranged.ack(run);
            }
        } catch (JMSException | RuntimeException e) {
            // The connection is failing: nothing more is acknowledged on it (redelivered).
            for (Held entry : held) {
                entry.state = Held.FORGOTTEN;
            }
            held.clear();
            heldByTag.clear();
            throw e;
        }
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
    public synchronized void forget(long[] tags) {
        for (long tag : tags) {
            unacked.remove(tag);
            Held entry = heldByTag.remove(tag);
            if (entry != null) {
                entry.state = Held.FORGOTTEN;
            }
        }
        if (ranged != null) {
            try {
                settle();
            } catch (JMSException e) {
                // settle() forgot the rest; the caller learns of the failing connection from its next call
            }
        }
    }

    /** Forget every message held. */
    public synchronized void clear() {
        unacked.clear();
        covering = null;
        held.clear();
        heldByTag.clear();
    }

    /** How many messages are held for acknowledgement. */
    public synchronized int pending() {
        return unacked.size() + heldByTag.size();
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
