"""The extractor as a spark-submit application file: the Spark Operator's SparkApplication
names it (``mainApplicationFile: local:///opt/questlog/spark_main.py``, its ``arguments``
are the command line of ``python -m questlog_extractor``), spark-submit starts it as the
Python driver. A file, not a module, because spark-submit takes a path.

Usage::

    spark-submit --master k8s://... local:///opt/questlog/spark_main.py [--once] [run|maintain]
    python3 /opt/questlog/spark_main.py --help
"""

import sys

from questlog_extractor.__main__ import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
