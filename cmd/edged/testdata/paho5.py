#!/usr/bin/python3
"""An MQTT 5.0 peer for edged's interop tests, on Debian's python3-paho-mqtt
(an implementation independent of edged and of Mosquitto's clients).

  paho5.py PORT sub FILTER SUBID COUNT   subscribe (QoS 1, subscription id
                                         SUBID, no local), print COUNT
                                         messages as JSON lines, exit
  paho5.py PORT pub TOPIC PAYLOAD        publish QoS 1 with response topic,
                                         correlation data, user properties,
                                         content type and expiry, exit on PUBACK
  paho5.py PORT respond FILTER           answer one request: publish to its
                                         response topic with its correlation
                                         data, exit

It prints "ready" once subscribed. Every wait is bounded.
"""
import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

port, mode = int(sys.argv[1]), sys.argv[2]
done = threading.Event()
subscribed = threading.Event()
c = mqtt.Client(client_id="paho5-" + mode, protocol=mqtt.MQTTv5)


def props_of(m):
    p = m.properties
    out = {}
    for name in ("ContentType", "ResponseTopic", "MessageExpiryInterval",
                 "PayloadFormatIndicator", "SubscriptionIdentifier", "TopicAlias"):
        if hasattr(p, name):
            out[name] = getattr(p, name)
    if hasattr(p, "CorrelationData"):
        out["CorrelationData"] = p.CorrelationData.hex()
    if hasattr(p, "UserProperty"):
        out["UserProperty"] = [list(kv) for kv in p.UserProperty]
    return out


def on_subscribe(client, userdata, mid, reason_codes, properties):
    subscribed.set()


c.on_subscribe = on_subscribe

if mode == "sub":
    filt, subid, count = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    seen = []

    def on_message(client, userdata, m):
        print(json.dumps({"topic": m.topic, "payload": m.payload.decode("utf-8", "replace"),
                          "qos": m.qos, "retain": bool(m.retain), "props": props_of(m)}), flush=True)
        seen.append(m)
        if len(seen) >= count:
            done.set()

    c.on_message = on_message
    c.connect("127.0.0.1", port, keepalive=30, clean_start=True)
    c.loop_start()
    sp = Properties(PacketTypes.SUBSCRIBE)
    sp.SubscriptionIdentifier = subid
    c.subscribe(filt, options=SubscribeOptions(qos=1, noLocal=True), properties=sp)
    if not subscribed.wait(10):
        sys.exit("no SUBACK")
    print("ready", flush=True)
    ok = done.wait(20)
    c.disconnect()
    c.loop_stop()
    sys.exit(0 if ok else "timed out")

elif mode == "pub":
    topic, payload = sys.argv[3], sys.argv[4]
    c.connect("127.0.0.1", port, keepalive=30, clean_start=True)
    c.loop_start()
    pp = Properties(PacketTypes.PUBLISH)
    pp.ResponseTopic = "paho/reply"
    pp.CorrelationData = b"\x00\x01corr"
    pp.UserProperty = ("from", "paho")
    pp.UserProperty = ("seq", "1")
    pp.ContentType = "text/plain"
    pp.MessageExpiryInterval = 120
    info = c.publish(topic, payload, qos=1, properties=pp)
    info.wait_for_publish(10)
    c.disconnect()
    c.loop_stop()
    sys.exit(0 if info.is_published() else "not acknowledged")

elif mode == "respond":
    filt = sys.argv[3]

    def on_message(client, userdata, m):
        rp = Properties(PacketTypes.PUBLISH)
        if hasattr(m.properties, "CorrelationData"):
            rp.CorrelationData = m.properties.CorrelationData
        info = client.publish(m.properties.ResponseTopic, b"answer to " + m.payload, qos=1, properties=rp)
        threading.Thread(target=lambda: (info.wait_for_publish(10), done.set())).start()

    c.on_message = on_message
    c.connect("127.0.0.1", port, keepalive=30, clean_start=True)
    c.loop_start()
    c.subscribe(filt, qos=1)
    if not subscribed.wait(10):
        sys.exit("no SUBACK")
    print("ready", flush=True)
    ok = done.wait(20)
    c.disconnect()
    c.loop_stop()
    sys.exit(0 if ok else "timed out")
