"""A StatsD listener for tests: what the migration's metrics (core/metrics.py) really send."""
from __future__ import annotations

import socket
import threading
from collections import defaultdict


class StatsdListener:
    """A UDP socket on 127.0.0.1 (a free port) keeping every StatsD line it receives."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.packets.append(self.sock.recv(65535).decode())
            except TimeoutError:
                continue

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def lines(self) -> list[tuple[str, float, str]]:
        out = []
        for packet in self.packets:
            for line in packet.split("\n"):
                name, _, rest = line.partition(":")
                value, _, kind = rest.partition("|")
                out.append((name, float(value), kind))
        return out

    def counters(self) -> dict[str, float]:
        sums: dict[str, float] = defaultdict(float)
        for name, value, kind in self.lines():
            if kind == "c":
                sums[name] += value
        return dict(sums)

    def gauges(self) -> dict[str, float]:
        return {name: value for name, value, kind in self.lines() if kind == "g"}
