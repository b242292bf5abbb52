/*
 * edged_mqtt.h - a minimal MQTT 3.1.1 client for sensors talking to edged
 * over a serial line with cobs-crc16 framing (serialio/WIRE.md). Portable C99,
 * no malloc: all buffers are in the edged_mqtt struct, sized at compile time.
 *
 * What it does: CONNECT with clean session 0, a client id and a keepalive;
 * SUBSCRIBE (QoS 0/1); PUBLISH QoS 0 and 1; PINGREQ; receiving PUBLISH
 * (QoS 0/1, PUBACK sent). No QoS 2, no will, no username/password.
 *
 * The reconnect rule: when a CONNACK, PUBACK, SUBACK or PINGRESP does not
 * arrive within ack_timeout_ms, or edged sends link-control RESET for our
 * channel, the client sends CONNECT again (same client id, clean session 0)
 * and, once connected, resends every unacknowledged PUBLISH with DUP set.
 * The session kept by edged does the rest. There is no link-layer retry.
 */
#ifndef EDGED_MQTT_H
#define EDGED_MQTT_H

#include <stddef.h>
#include <stdint.h>

#include "edged_frame.h"

#ifndef EDGED_MQTT_MAX_PACKET
#define EDGED_MQTT_MAX_PACKET 128 /* largest MQTT packet sent or received */
#endif
#ifndef EDGED_MQTT_MAX_INFLIGHT
#define EDGED_MQTT_MAX_INFLIGHT 4 /* unacknowledged QoS 1 PUBLISH packets */
#endif
#ifndef EDGED_MQTT_MAX_SUBS
#define EDGED_MQTT_MAX_SUBS 2
#endif

typedef struct {
	uint8_t channel;         /* 0 on a point-to-point link */
	const char *client_id;   /* must outlive the client */
	uint16_t keepalive_s;    /* 0 disables PINGREQ */
	uint16_t ack_timeout_ms; /* 0 means 3000 */
	/* Sends n bytes on the serial line; returns 0 on success. */
	int (*write)(void *ctx, const uint8_t *p, size_t n);
	/* A millisecond clock; may wrap. */
	uint32_t (*millis)(void *ctx);
	/* Called for each PUBLISH received; may be NULL. topic is not
	 * NUL-terminated. */
	void (*on_message)(void *ctx, const char *topic, size_t topic_len,
	                   const uint8_t *payload, size_t len);
	void *ctx;
} edged_mqtt_config;

typedef struct {
	uint8_t used, sent;
	uint16_t id, len;
	uint32_t sent_at;
	uint8_t pkt[EDGED_MQTT_MAX_PACKET];
} edged_mqtt_msg;

enum { EDGED_MQTT_IDLE, EDGED_MQTT_CONNECTING, EDGED_MQTT_CONNECTED };

typedef struct {
	edged_mqtt_config cfg;
	uint8_t state;
	uint8_t ping_out;
	uint32_t since;   /* CONNECT or PINGREQ sent, or CONNACK refused */
	uint32_t last_tx;
	uint16_t next_id;
	uint16_t sub_id;  /* SUBSCRIBE awaiting SUBACK, 0 if none */
	uint32_t sub_at;
	const char *subs[EDGED_MQTT_MAX_SUBS];
	uint8_t sub_qos[EDGED_MQTT_MAX_SUBS];
	uint8_t nsubs;
	uint8_t sub_idx;    /* subs[sub_idx] is being subscribed */
	uint8_t subscribed; /* subs[0..subscribed) acknowledged this session */
	uint16_t connects; /* CONNECT packets sent, for diagnostics */
	uint16_t resets;   /* RESET frames received for our channel */
	edged_mqtt_msg inflight[EDGED_MQTT_MAX_INFLIGHT];
	edged_decoder dec;
	uint8_t rx[EDGED_MQTT_MAX_PACKET + 3];
	uint8_t tx[EDGED_WIRE_MAX(EDGED_MQTT_MAX_PACKET)];
} edged_mqtt;

void edged_mqtt_init(edged_mqtt *c, const edged_mqtt_config *cfg);
/* Sends CONNECT. Returns 0, or -1 if the write failed. */
int edged_mqtt_connect(edged_mqtt *c);
/* Adds a subscription (topic must outlive the client) and sends SUBSCRIBE
 * when connected. Returns 0, or -1 if the table is full or too long. */
int edged_mqtt_subscribe(edged_mqtt *c, const char *topic, uint8_t qos);
/* Publishes. QoS 1 packets are kept until PUBACK and sent once connected.
 * Returns the packet id (QoS 1) or 0 (QoS 0), or -1 if no in-flight slot
 * is free or the packet is too large. */
long edged_mqtt_publish(edged_mqtt *c, const char *topic, const uint8_t *payload,
                        size_t len, uint8_t qos);
/* Feeds bytes received from the serial line. */
void edged_mqtt_input(edged_mqtt *c, const uint8_t *p, size_t n);
/* Runs timers: keepalive and ack timeouts. Call often (every few ms). */
void edged_mqtt_poll(edged_mqtt *c);
/* Number of QoS 1 PUBLISH packets not yet acknowledged. */
int edged_mqtt_inflight(const edged_mqtt *c);
/* Sends DISCONNECT. */
int edged_mqtt_disconnect(edged_mqtt *c);

#endif
