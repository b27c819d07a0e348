package questlog.extractor;

import java.time.Duration;
import java.util.Collections;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.StatefulProcessor;
import org.apache.spark.sql.streaming.TTLConfig;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.streaming.ValueState;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The extractor's dedup: the first row of each key, and none of the key's rows for
 * {@code ttlMs} of processing time after it (Spark's transformWithState, one value state
 * with a TTL per key).
 *
 * <p>Why not {@code dropDuplicatesWithinWatermark}: its eviction reads the whole state store
 * every micro-batch, so a small batch's cost grows with the ids of the last window (one hour
 * at 1,000 events/s is 3.6 million). Expired TTL values are found through a secondary index
 * ordered by expiry, so a batch reads only its own keys and what expires.
 *
 * <p>From Python: {@code DataFrame(jvm.questlog.extractor.TtlDedup.apply(df._jdf, key, ms),
 * spark)}. Needs the RocksDB state store provider.
 */
public final class TtlDedup extends StatefulProcessor<String, Row, Row> {
  private static final long serialVersionUID = 1L;
  private final long ttlMs;
  private transient ValueState<Boolean> seen;

  public TtlDedup(long ttlMs) {
    if (ttlMs <= 0) {
      throw new IllegalArgumentException("the dedup TTL must be positive, got " + ttlMs + " ms");
    }
    this.ttlMs = ttlMs;
  }

  @Override
  public void init(OutputMode outputMode, TimeMode timeMode) {
    seen =
        getHandle()
            .getValueState("seen", Encoders.BOOLEAN(), new TTLConfig(Duration.ofMillis(ttlMs)));
  }

  @Override
  public scala.collection.Iterator<Row> handleInputRows(
      String key, scala.collection.Iterator<Row> rows, TimerValues timerValues) {
    if (seen.exists()) {
      return CollectionConverters.asScala(Collections.<Row>emptyIterator());
    }
    seen.update(Boolean.TRUE); // the TTL counts from this batch's processing time
    return CollectionConverters.asScala(Collections.singletonList(rows.next()).iterator());
  }

  /** {@code df} deduplicated on the string column {@code keyColumn}, same schema. */
  public static Dataset<Row> apply(Dataset<Row> df, String keyColumn, long ttlMs) {
    final int index = df.schema().fieldIndex(keyColumn);
    return df.groupByKey((MapFunction<Row, String>) row -> row.getString(index), Encoders.STRING())
        .transformWithState(
            new TtlDedup(ttlMs),
            TimeMode.ProcessingTime(),
            OutputMode.Append(),
            Encoders.row(df.schema()));
  }
}
