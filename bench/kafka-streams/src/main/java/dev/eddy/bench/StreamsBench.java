package dev.eddy.bench;

import java.time.Duration;
import java.util.Arrays;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;

/**
 * The benchmark workloads in Kafka Streams, matching Eddy's:
 * passthrough (drop blank lines, upper-case the rest), wordcount (split on whitespace,
 * lower-case, repartition by word, count in a RocksDB store, emit every new count) and latest
 * (keep the latest value of every key in a RocksDB store, emit each value's length; the
 * recovery benchmark's large state, run as a static group member like Eddy's), windowed
 * (clicks counted per user in tumbling one-second event-time windows without grace, one
 * final result per window through suppress) and join (clicks left-joined with the users table
 * read from {@code <input>-users}).
 *
 * <p>Arguments: workload guarantee bootstrap application-id input output state-dir
 */
public final class StreamsBench {
    private StreamsBench() {}

    public static void main(String[] args) throws InterruptedException {
        if (args.length != 7) {
            System.err.println("usage: StreamsBench passthrough|wordcount|latest|windowed|join exactly_once|at_least_once"
                + " bootstrap application-id input output state-dir");
            System.exit(2);
        }
        String workload = args[0];
        String guarantee = args[1].equals("exactly_once")
            ? StreamsConfig.EXACTLY_ONCE_V2 : StreamsConfig.AT_LEAST_ONCE;
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[3]);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[2]);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[6]);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.String().getClass());
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.String().getClass());
        props.put("auto.offset.reset", "earliest");
        // Every count update is emitted, as Eddy's count does; the default record cache would
        // coalesce updates and make wordcount a different (smaller-output) workload.
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        if (workload.equals("latest")) {
            // A restart after kill -9 rejoins as the same member instead of waiting for the
            // dead one's session to expire; the benchmark measures state recovery.
            props.put(StreamsConfig.consumerPrefix(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG),
                args[3] + "-instance");
        }

        StreamsBuilder builder = new StreamsBuilder();
        switch (workload) {
            case "passthrough":
                lines(builder, args[4]).filter((k, v) -> v != null && !v.isBlank())
                    .mapValues(v -> v.toUpperCase(Locale.ROOT))
                    .to(args[5], Produced.with(Serdes.String(), Serdes.String()));
                break;
            case "wordcount":
                lines(builder, args[4]).flatMapValues(v -> Arrays.asList(v.toLowerCase(Locale.ROOT).trim().split("\\s+")))
                    .filter((k, w) -> !w.isEmpty())
                    .selectKey((k, w) -> w)
                    .groupByKey(Grouped.with("counts", Serdes.String(), Serdes.String()))
                    .count(Materialized.as("counts"))
                    .toStream()
                    .mapValues(n -> Long.toString(n))
                    .to(args[5], Produced.with(Serdes.String(), Serdes.String()));
                break;
            case "latest":
                builder.stream(args[4], Consumed.with(Serdes.String(), Serdes.ByteArray()))
                    .groupByKey(Grouped.with(Serdes.String(), Serdes.ByteArray()))
                    .reduce((old, latest) -> latest,
                        Materialized.<String, byte[], KeyValueStore<Bytes, byte[]>>as("latest")
                            .withKeySerde(Serdes.String())
                            .withValueSerde(Serdes.ByteArray()))
                    .toStream()
                    .mapValues(v -> Integer.toString(v.length))
                    .to(args[5], Produced.with(Serdes.String(), Serdes.String()));
                break;
            case "windowed":
                builder.stream(args[4], Consumed.with(Serdes.String(), Serdes.String()))
                    .groupByKey(Grouped.with(Serdes.String(), Serdes.String()))
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofSeconds(1), Duration.ZERO))
                    .count(Materialized.as("counts"))
                    .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                    .toStream()
                    .map((w, n) -> KeyValue.pair(w.key() + "@" + w.window().start(), Long.toString(n)))
                    .to(args[5], Produced.with(Serdes.String(), Serdes.String()));
                break;
            case "join":
                KTable<String, String> users = builder.table(args[4] + "-users",
                    Consumed.with(Serdes.String(), Serdes.String()),
                    Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as("users"));
                lines(builder, args[4])
                    .leftJoin(users, (page, region) -> page + "," + (region == null ? "-" : region))
                    .to(args[5], Produced.with(Serdes.String(), Serdes.String()));
                break;
            default:
                System.err.println("unknown workload " + workload);
                System.exit(2);
        }
        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close();
            stopped.countDown();
        }));
        streams.setUncaughtExceptionHandler(e -> {
            e.printStackTrace();
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                .StreamThreadExceptionResponse.SHUTDOWN_APPLICATION;
        });
        streams.start();
        stopped.await();
    }

    private static KStream<String, String> lines(StreamsBuilder builder, String topic) {
        return builder.stream(topic, Consumed.with(Serdes.String(), Serdes.String()));
    }
}
