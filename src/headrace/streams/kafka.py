"""Kafka: not implemented — no Kafka broker runs on the machines this is tested on.

An adapter that was never run against a broker would be a stub; this module says what
adding one takes instead. A ``KafkaStreamSource(StreamSource)`` (confluent-kafka, in the
``streams`` extra) would:

- subscribe with ``group.id`` as the durable identity, ``enable.auto.commit=false``
  and ``isolation.level=read_committed``;
- ``open(committed)``: in the ``on_assign`` callback, ``seek`` every assigned
  partition to the committed offset + 1 from the warehouse (the warehouse, not the
  group's committed offsets, is the source of truth), so re-deliveries never happen
  out of order; rebalances revoke partitions only between batches (commit first);
- ``read(limits)``: ``consume(num_messages, timeout)`` until count/bytes/time; the
  partition is ``topic/partition``, the position the offset (an integer already);
- ``ack(batch)``: ``commit(offsets=..., asynchronous=False)`` of the batch's highest
  offset + 1 per partition — only for monitoring tools, since resuming reads the
  warehouse;
- ``lag()``: high watermark minus position, summed over the assigned partitions.

Its tests need a broker (a Redpanda or Kafka container in CI): the same crash test as
the other brokers (``tests/streams/test_stream_crash.py``), the same benchmark row.
"""
