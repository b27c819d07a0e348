"""A loopback TCP proxy that a scenario can cut and slow down: the network between the API
and Kafka, without root or network namespaces.

Modes (``proxy.set_mode(...)``):
- ``open``: bytes flow both ways.
- ``blackhole``: nothing flows either way; bytes wait (as TCP retransmits through a short
  partition) and flow again when the mode returns to ``open``.
- ``drop_replies``: requests reach the server, its replies are thrown away: the ambiguous
  case where the broker wrote the record and the ack never arrives.
``delay_s`` holds every chunk that long before forwarding it. ``reset()`` closes every
connection (a partition that outlasted the connections); new ones are accepted in any mode.

Usage::

    with TcpProxy(("127.0.0.1", inner_port), port=listen_port) as proxy:
        proxy.set_mode("drop_replies"); ...; proxy.reset(); proxy.set_mode("open")
"""

from __future__ import annotations

import socket
import threading
import time

MODES = ("open", "blackhole", "drop_replies")


class TcpProxy:
    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self._server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.port = self._server.getsockname()[1]
        self.mode = "open"
        self.delay_s = 0.0
        self._flowing = threading.Condition()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        self.connections = 0

    def __enter__(self) -> TcpProxy:
        threading.Thread(target=self._accept, name="tcpproxy-accept", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        with self._flowing:
            self.mode = mode
            self._flowing.notify_all()

    def reset(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _close(sock)

    def close(self) -> None:
        self._closed = True
        _close(self._server)
        self.reset()
        with self._flowing:
            self._flowing.notify_all()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._pairs.append((client, upstream))
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        try:
            while not self._closed:
                chunk = source.recv(65536)
                if not chunk:
                    break
                if self.delay_s:
                    time.sleep(self.delay_s)
                with self._flowing:
                    while self.mode == "blackhole" and not self._closed:
                        self._flowing.wait(0.5)
                if replies and self.mode == "drop_replies":
                    continue
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
