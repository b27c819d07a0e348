"""Files under a checkpoint (a local path or HDFS), read and written through Hadoop's
FileSystem in the Spark session's JVM: ``job.checkpoint_dedup`` and ``migrate``."""

from __future__ import annotations

from typing import Any


class HadoopFs:
    """The few FileSystem calls the checkpoint's readers need, for the file system of
    ``uri`` (the session's Hadoop configuration)."""

    def __init__(self, spark: Any, uri: str) -> None:
        self._jvm = spark._jvm
        self._conf = spark._jsc.hadoopConfiguration()
        self._fs = self._path(uri).getFileSystem(self._conf)

    def _path(self, uri: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(uri)

    def exists(self, uri: str) -> bool:
        return bool(self._fs.exists(self._path(uri)))

    def list(self, uri: str) -> list[tuple[str, bool]]:
        """``(name, is_file)`` of each entry of a directory; none if it does not exist."""
        if not self.exists(uri):
            return []
        return [
            (status.getPath().getName(), bool(status.isFile()))
            for status in self._fs.listStatus(self._path(uri))
        ]

    def read(self, uri: str) -> str:
        stream = self._fs.open(self._path(uri))
        try:
            return str(self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()

    def write(self, uri: str, text: str) -> None:
        stream = self._fs.create(self._path(uri), False)  # never overwrites
        try:
            stream.write(bytearray(text.encode()))
        finally:
            stream.close()

    def rename(self, src: str, dst: str) -> None:
        if self.exists(dst):
            raise FileExistsError(dst)
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"could not rename {src} to {dst}")
