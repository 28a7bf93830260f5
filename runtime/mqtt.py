"""Publish stream events to an MQTT broker (`hicmd stream --mqtt mqtt://host:1883/topic`). Torch-free; needs
paho-mqtt (`pip install 'hicmd[mqtt]'`).

The pipeline only appends to a bounded buffer: a sender thread publishes while the broker is connected (QoS 1) and
waits while it is not; paho reconnects with backoff. When the buffer is full the oldest event is dropped and
counted, so a dead or slow broker never stalls the cameras.

    publisher = MqttPublisher("mqtt://10.0.0.2:1883/hicmd/events")
    run_stream(opts, embedder, on_event=publisher.publish)
    publisher.close()
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from hicmd.errors import HicmdError

__all__ = ["MqttError", "MqttTarget", "MqttPublisher", "parse_mqtt_url"]


class MqttError(HicmdError, ValueError):
    """A --mqtt URL that cannot be used."""


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    topic: str
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def redacted(self) -> str:
        """The URL without the password, for logs (credentials are never printed)."""
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}/{self.topic}"


def parse_mqtt_url(url: str) -> MqttTarget:
    """mqtt://[user:password@]host[:1883]/topic/path or mqtts://... (TLS, port 8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise MqttError(f"--mqtt must look like mqtt://host:1883/topic (or mqtts:// for TLS), got "
                        f"{parts.scheme or 'no scheme'}://{parts.hostname or '?'}")
    topic = unquote(parts.path.lstrip("/"))
    if not topic or "+" in topic or "#" in url:  # urlsplit would take a '#' wildcard for a fragment
        raise MqttError("--mqtt needs a topic without wildcards after the host, e.g. mqtt://host:1883/hicmd/events")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise MqttError("--mqtt has a port that is not a number in 1..65535") from None
    return MqttTarget(parts.hostname, port, topic, unquote(parts.username) if parts.username else None,
                      unquote(parts.password) if parts.password else None, parts.scheme == "mqtts")


class MqttPublisher:
    """Thread-safe `publish(event)` that never blocks; `close()` flushes for up to `flush_s` seconds."""

    def __init__(self, url: str | MqttTarget, buffer: int = 1000, keepalive: int = 10) -> None:
        import paho.mqtt.client as mqtt

        self.target = url if isinstance(url, MqttTarget) else parse_mqtt_url(url)
        self._mqtt = mqtt
        self._buffer: deque[bytes] = deque()
        self._capacity = buffer
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.connected = threading.Event()
        self.published = self.acknowledged = self.dropped = self.connects = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"hicmd-{uuid.uuid4().hex[:8]}")
        if self.target.username:
            self.client.username_pw_set(self.target.username, self.target.password)
        if self.target.tls:
            self.client.tls_set()
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(buffer)  # paho's own queue is bounded too
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.connected.clear()
        self.client.on_publish = self._on_publish
        self.client.connect_async(self.target.host, self.target.port, keepalive)
        self.client.loop_start()  # paho's network thread: connects, and reconnects with backoff
        self._sender = threading.Thread(target=self._send, name="hicmd-mqtt", daemon=True)
        self._sender.start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if not getattr(reason, "is_failure", False):
            self.connects += 1
            self.connected.set()
            self._wake.set()

    def _on_publish(self, *args: Any) -> None:
        self.acknowledged += 1  # the broker's PUBACK: only now is a QoS 1 event safely out of this process

    def publish(self, event: dict[str, Any]) -> None:
        payload = json.dumps(event, separators=(",", ":")).encode()
        with self._lock:
            if len(self._buffer) >= self._capacity:
                self._buffer.popleft()  # the oldest goes: recent events matter most to a live system
                self.dropped += 1
            self._buffer.append(payload)
        self._wake.set()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def _send(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            while self.connected.is_set() and not self._stop.is_set():
                with self._lock:
                    if not self._buffer:
                        break
                    payload = self._buffer.popleft()
                info = self.client.publish(self.target.topic, payload, qos=1)
                if info.rc != self._mqtt.MQTT_ERR_SUCCESS:  # connection lost or paho's queue full: retry later
                    with self._lock:
                        self._buffer.appendleft(payload)
                    self._stop.wait(0.2)
                    break
                self.published += 1

    def close(self, flush_s: float = 2.0) -> None:
        """Send what is buffered and wait for the broker to acknowledge it, up to `flush_s` (also for a reconnect),
        then disconnect: an event handed to paho but not yet acknowledged would otherwise die with the process."""
        pause = threading.Event()
        for _ in range(int(flush_s / 0.05)):
            if not self.pending and self.acknowledged >= self.published:
                break
            self._wake.set()
            pause.wait(0.05)
        self._stop.set()
        self._wake.set()
        self._sender.join(timeout=2.0)
        self.client.disconnect()
        self.client.loop_stop()

    def describe(self) -> str:
        return f"MQTT {self.target.redacted()} (QoS 1, buffer {self._capacity})"
