"""Events against the shipped JSON Schema (validated with jsonschema), and MQTT publishing against a real mosquitto
that the test starts on 127.0.0.1, kills mid-run and restarts."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest

from testkit.stream import FakeEmbedder, make_clip

from hicmd.runtime.events import JSON_SCHEMA, SCHEMA, SCHEMA_VERSION  # noqa: E402
from hicmd.runtime.stream import StreamOptions, run_stream  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(JSON_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("mqttclip"), seconds=6.0)


def test_schema_ships_with_the_package_and_covers_every_event_type(validator):
    import hicmd.runtime

    assert JSON_SCHEMA.parent == Path(hicmd.runtime.__file__).parent
    assert set(validator.schema["properties"]["event"]["enum"]) == set(SCHEMA)  # the Python list and the file agree
    for kind, fields in SCHEMA.items():
        assert set(validator.schema["$defs"][kind]["required"]) == set(fields), kind


def test_real_run_validates_and_bad_events_do_not(clip, tmp_path, validator):
    out = tmp_path / "ev.jsonl"
    run_stream(StreamOptions(rgb=str(clip / "rgb.mp4"), ir=str(clip / "ir.mp4"),
                             detections_rgb=str(clip / "det_rgb.txt"), detections_ir=str(clip / "det_ir.txt"),
                             events=str(out), stats_every=0.005, embed_every=2),
               FakeEmbedder())
    events = [json.loads(line) for line in out.read_text().splitlines()]
    for event in events:
        validator.validate(event)
    kinds = {e["event"] for e in events}
    assert {"track_new", "track_end", "match", "stats", "calibration"} <= kinds, kinds
    assert all(e["schema"] == SCHEMA_VERSION for e in events)
    match = next(e for e in events if e["event"] == "match")
    for broken in ({**match, "gid": "7"}, {k: v for k, v in match.items() if k != "distance"},
                   {**match, "schema": 99}, {**match, "event": "teleport"}):
        assert list(validator.iter_errors(broken)), broken


# ---------------------------------------------------------------------------------------------- MQTT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A real mosquitto on 127.0.0.1:port that the test can kill and start again."""

    def __init__(self, folder: Path, port: int) -> None:
        self.port, self.proc = port, None
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class Subscriber:
    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[dict] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hicmd-test-sub")
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)  # again after each reconnect
        self.client.on_message = lambda c, u, msg: self.messages.append(json.loads(msg.payload))
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does)")
    b = Broker(tmp_path, _free_port())
    b.start()
    yield b
    b.kill()


def _wait(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.slow
def test_mqtt_survives_a_broker_that_dies_and_comes_back(clip, broker, validator):
    from hicmd.runtime.mqtt import MqttPublisher

    sub = Subscriber(broker.port, "hicmd/test")
    publisher = MqttPublisher(f"mqtt://127.0.0.1:{broker.port}/hicmd/test")
    assert _wait(lambda: publisher.connected.is_set() and sub.client.is_connected(), 5)
    opts = StreamOptions(rgb=str(clip / "rgb.mp4"), ir=str(clip / "ir.mp4"), detections_rgb=str(clip / "det_rgb.txt"),
                         detections_ir=str(clip / "det_ir.txt"), events=open("/dev/null", "w"), stats_every=0.1,
                         realtime=True)  # paced like a camera: 6 s
    result = {}
    runner = threading.Thread(target=lambda: result.update(summary=run_stream(opts, FakeEmbedder(),
                                                                               on_event=publisher.publish)))
    started = time.monotonic()
    runner.start()
    assert _wait(lambda: len(sub.messages) >= 5, 4), "events reach the subscriber while the broker is up"
    broker.kill()
    before = len(sub.messages)
    time.sleep(1.5)  # the stream goes on; its events wait in the publisher's buffer
    assert runner.is_alive() and not publisher.connected.is_set()
    broker.start()
    runner.join(timeout=30)
    assert not runner.is_alive() and result["summary"].steps > 0
    assert time.monotonic() - started < 15, "a dead broker must not stall the pipeline"
    publisher.close(flush_s=5)
    assert _wait(lambda: len(sub.messages) > before + 5, 5), "events flow again after the broker restarts"
    assert publisher.connects >= 2 and publisher.dropped == 0 and publisher.acknowledged == publisher.published
    for message in sub.messages:
        validator.validate(message)
    stats_t = [m["time"] for m in sub.messages if m["event"] == "stats"]
    assert stats_t == sorted(stats_t)  # buffered events arrive in order
    sub.close()


def test_dead_broker_never_stalls_and_the_buffer_is_bounded(clip):
    from hicmd.runtime.mqtt import MqttPublisher

    publisher = MqttPublisher(f"mqtt://127.0.0.1:{_free_port()}/hicmd/test", buffer=5)  # nobody listens there
    start = time.monotonic()
    summary = run_stream(StreamOptions(rgb=str(clip / "rgb.mp4"), ir=str(clip / "ir.mp4"),
                                       detections_rgb=str(clip / "det_rgb.txt"), detections_ir=str(clip / "det_ir.txt"),
                                       events=open("/dev/null", "w")), FakeEmbedder(), on_event=publisher.publish)
    took = time.monotonic() - start
    publisher.close(flush_s=0.5)
    events = sum(summary.events.values())
    assert events > 10 and publisher.pending == 5 and publisher.dropped == events - 5 and publisher.published == 0
    assert took < 10


def test_mqtt_url_errors_are_one_line():
    from hicmd.runtime.mqtt import MqttError, parse_mqtt_url

    target = parse_mqtt_url("mqtt://cam:s3cret@10.0.0.2/site/a%2Fb")
    assert (target.host, target.port, target.topic, target.password) == ("10.0.0.2", 1883, "site/a/b", "s3cret")
    assert "s3cret" not in target.redacted()
    for bad in ("http://host/topic", "mqtt://host", "mqtt://host/a/#", "mqtt://host:99999/t"):
        with pytest.raises(MqttError):
            parse_mqtt_url(bad)


def test_cli_stream_publishes_to_mqtt(clip, broker, validator, tmp_path):
    from testkit.graphs import make_export

    make_export(tmp_path / "model")
    sub = Subscriber(broker.port, "site/gate")
    assert _wait(sub.client.is_connected, 5)
    run = subprocess.run([sys.executable, "-m", "hicmd", "stream", "--rgb", str(clip / "rgb.mp4"), "--ir",
                          str(clip / "ir.mp4"), "--model", str(tmp_path / "model"), "--detections-rgb",
                          str(clip / "det_rgb.txt"), "--detections-ir", str(clip / "det_ir.txt"), "--events",
                          str(tmp_path / "ev.jsonl"), "--mqtt", f"mqtt://cam:s3cret@127.0.0.1:{broker.port}/site/gate"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    written = [json.loads(line) for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert _wait(lambda: len(sub.messages) >= len(written), 15)  # the broker has them all (acknowledged at exit)
    sub.close()
    assert sub.messages == written and len(written) > 5  # the same events, in the same order
    for message in sub.messages:
        validator.validate(message)
    assert "s3cret" not in run.stderr + run.stdout and "cam:***@" in run.stderr
    printed = " ".join((run.stdout + run.stderr).split())  # rich may wrap the line
    assert f"{len(written)} events published ({len(written)} acknowledged by the broker)" in printed
