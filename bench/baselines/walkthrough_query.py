"""BASELINE, not questlog: the walkthrough's notebook query with Spark SQL, for
`make bench` only.

Usage (from bench/cases): run(spark, parquet_dir, host) -> rows
"""


def register(spark, table_dir, name):
    spark.read.parquet(table_dir).createOrReplaceTempView(name)


def purchases_by_host(spark, host):
    # the notebook pasted the host into SQL; a bound parameter keeps the same plan
    return spark.sql("select * from purchases where host = :host", args={"host": host}).count()


def counts_by_host(spark):
    return spark.sql("select host, count(*) as n from purchases group by host").collect()
