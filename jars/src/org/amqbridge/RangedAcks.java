package org.amqbridge;

import java.lang.reflect.Field;
import java.util.Iterator;
import java.util.LinkedList;
import java.util.List;

import javax.jms.JMSException;
import javax.jms.Message;
import javax.jms.MessageConsumer;

import org.apache.activemq.ActiveMQMessageConsumer;
import org.apache.activemq.ActiveMQSession;
import org.apache.activemq.command.ActiveMQMessage;
import org.apache.activemq.command.MessageAck;
import org.apache.activemq.command.MessageDispatch;
import org.apache.activemq.command.MessageId;

/**
 * Acknowledges a run of consecutive deliveries of a CLIENT_ACKNOWLEDGE consumer, and nothing
 * else, with one OpenWire standard acknowledgement.
 *
 * <p>{@code Message.acknowledge()} of such a session acknowledges every message the session
 * delivered so far: with the next batch received while this one is being written, it would
 * cover events not written yet. The broker needs no such thing: a standard {@link MessageAck}
 * names a first and a last message id and a count, and the broker acknowledges exactly that
 * stretch of what it dispatched to the consumer, checking first that the stretch is there and
 * holds that many ({@code PrefetchSubscription.assertAckMatchesDispatched}). So this class builds
 * that command itself, for a run the caller acked, and takes the run out of the consumer's
 * delivered list with the same bookkeeping {@code ActiveMQMessageConsumer.acknowledge()} does
 * (the delivered counters that drive prefetch-window acknowledgements, the pending delivered
 * acknowledgement). Those are private fields of ActiveMQ's client: {@link #create} reads them
 * by reflection and returns null where that fails (another client), and the caller then
 * acknowledges cumulatively, without overlap.
 *
 * <p>A run that is no longer in the delivered list as consecutive entries (failover cleared the
 * list, the broker redelivers it) is not acknowledged: the broker delivers it again.
 */
final class RangedAcks {
    private final ActiveMQMessageConsumer consumer;
    private final ActiveMQSession session;
    private final LinkedList<MessageDispatch> delivered;
    private final Field deliveredCounter, additionalWindowSize, pendingAck;

    private RangedAcks(ActiveMQMessageConsumer consumer, ActiveMQSession session,
            LinkedList<MessageDispatch> delivered, Field deliveredCounter, Field additionalWindowSize,
            Field pendingAck) {
        this.consumer = consumer;
        this.session = session;
        this.delivered = delivered;
        this.deliveredCounter = deliveredCounter;
        this.additionalWindowSize = additionalWindowSize;
        this.pendingAck = pendingAck;
    }

    /** Ranged acknowledgements for {@code consumer}, or null where this client does not allow them. */
    @SuppressWarnings("unchecked")
    static RangedAcks create(MessageConsumer consumer, Object session) {
        if (!(consumer instanceof ActiveMQMessageConsumer) || !(session instanceof ActiveMQSession)) {
            return null;
        }
        try {
            Class<?> type = ActiveMQMessageConsumer.class;
            Field list = field(type, "deliveredMessages");
            Field counter = field(type, "deliveredCounter");
            Field window = field(type, "additionalWindowSize");
            Field pending = field(type, "pendingAck");
            if (list.getType() != LinkedList.class || counter.getType() != int.class
                    || window.getType() != int.class || pending.getType() != MessageAck.class) {
                return null;
            }
            return new RangedAcks((ActiveMQMessageConsumer) consumer, (ActiveMQSession) session,
                    (LinkedList<MessageDispatch>) list.get(consumer), counter, window, pending);
        } catch (ReflectiveOperationException | RuntimeException e) {
            return null;
        }
    }

    private static Field field(Class<?> type, String name) throws NoSuchFieldException {
        Field field = type.getDeclaredField(name);
        field.setAccessible(true);
        return field;
    }

    /**
     * Acknowledge {@code run}, messages received consecutively from the consumer, oldest first.
     *
     * @return false when the run is not in the consumer's delivered list (nothing was sent)
     */
    boolean ack(List<Message> run) throws JMSException {
        int count = run.size();
        if (count == 0) {
            return true;
        }
        MessageAck ack;
        synchronized (delivered) {
            // The delivered list is newest first: walk it oldest first to the run's first entry.
            MessageId first = id(run.get(0));
            Iterator<MessageDispatch> entries = delivered.descendingIterator();
            MessageDispatch entry = null;
            while (entries.hasNext()) {
                MessageDispatch candidate = entries.next();
                if (first.equals(candidate.getMessage().getMessageId())) {
                    entry = candidate;
                    break;
                }
            }
            if (entry == null) {
                return false;
            }
            MessageDispatch start = entry;
            for (int i = 1; i < count; i++) {
                if (!entries.hasNext()) {
                    return false;
                }
                entry = entries.next();
                if (!id(run.get(i)).equals(entry.getMessage().getMessageId())) {
                    return false;
                }
            }
            ack = new MessageAck(entry, MessageAck.STANDARD_ACK_TYPE, count);
            ack.setFirstMessageId(first);
            boolean newest = entry == delivered.getFirst();
            // What ActiveMQMessageConsumer.acknowledge() does for all it acknowledges, for these.
            entries = delivered.descendingIterator();
            while (entries.next() != start) {
                // the entries older than the run stay
            }
            entries.remove();
            for (int i = 1; i < count; i++) {
                entries.next();
                entries.remove();
            }
            try {
                deliveredCounter.setInt(consumer, Math.max(0, deliveredCounter.getInt(consumer) - count));
                additionalWindowSize.setInt(consumer, Math.max(0, additionalWindowSize.getInt(consumer) - count));
                if (newest) {  // the pending delivered ack names the newest delivery
                    pendingAck.set(consumer, null);
                }
            } catch (IllegalAccessException e) {
                throw new IllegalStateException(e);  // setAccessible succeeded in create()
            }
        }
        if (session.getConnection().isSendAcksAsync()) {
            session.asyncSendPacket(ack);
        } else {
            session.syncSendPacket(ack);
        }
        return true;
    }

    private static MessageId id(Message message) {
        return ((ActiveMQMessage) message).getMessageId();
    }
}
