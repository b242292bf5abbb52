/* edged_mqtt.c - see edged_mqtt.h. */
#include "edged_mqtt.h"

#include <string.h>

#define ACK_TIMEOUT(c) ((c)->cfg.ack_timeout_ms ? (c)->cfg.ack_timeout_ms : 3000u)

static uint32_t now(edged_mqtt *c) { return c->cfg.millis(c->cfg.ctx); }

/* Writes the fixed header for a packet with remaining length rem. */
static size_t put_header(uint8_t *p, uint8_t first, size_t rem)
{
	size_t i = 0;
	p[i++] = first;
	do {
		uint8_t d = (uint8_t)(rem % 128u);
		rem /= 128u;
		if (rem)
			d |= 0x80u;
		p[i++] = d;
	} while (rem);
	return i;
}

static size_t put_str(uint8_t *p, const char *s, size_t n)
{
	p[0] = (uint8_t)(n >> 8);
	p[1] = (uint8_t)n;
	memcpy(p + 2, s, n);
	return n + 2;
}

static int send_packet(edged_mqtt *c, const uint8_t *pkt, size_t n)
{
	size_t len = edged_frame_encode(c->cfg.channel, pkt, n, c->tx);
	c->last_tx = now(c);
	return c->cfg.write(c->cfg.ctx, c->tx, len) == 0 ? 0 : -1;
}

static uint16_t new_id(edged_mqtt *c)
{
	if (++c->next_id == 0)
		c->next_id = 1;
	return c->next_id;
}

void edged_mqtt_init(edged_mqtt *c, const edged_mqtt_config *cfg)
{
	memset(c, 0, sizeof *c);
	c->cfg = *cfg;
	edged_decoder_init(&c->dec, c->rx, sizeof c->rx);
}

int edged_mqtt_connect(edged_mqtt *c)
{
	uint8_t pkt[EDGED_MQTT_MAX_PACKET];
	size_t idlen = strlen(c->cfg.client_id), i;
	if (12 + idlen + 5 > sizeof pkt)
		return -1;
	i = put_header(pkt, 0x10, 10 + 2 + idlen);
	i += put_str(pkt + i, "MQTT", 4);
	pkt[i++] = 4;    /* protocol level 3.1.1 */
	pkt[i++] = 0x00; /* clean session 0, no will, no password */
	pkt[i++] = (uint8_t)(c->cfg.keepalive_s >> 8);
	pkt[i++] = (uint8_t)c->cfg.keepalive_s;
	i += put_str(pkt + i, c->cfg.client_id, idlen);
	c->state = EDGED_MQTT_CONNECTING;
	c->ping_out = 0;
	c->since = now(c);
	c->connects++;
	return send_packet(c, pkt, i);
}

static int send_subscribe(edged_mqtt *c, int k)
{
	uint8_t pkt[EDGED_MQTT_MAX_PACKET];
	size_t tlen = strlen(c->subs[k]), i;
	c->sub_id = new_id(c);
	c->sub_idx = (uint8_t)k;
	c->sub_at = now(c);
	i = put_header(pkt, 0x82, 2 + 2 + tlen + 1);
	pkt[i++] = (uint8_t)(c->sub_id >> 8);
	pkt[i++] = (uint8_t)c->sub_id;
	i += put_str(pkt + i, c->subs[k], tlen);
	pkt[i++] = c->sub_qos[k];
	return send_packet(c, pkt, i);
}

int edged_mqtt_subscribe(edged_mqtt *c, const char *topic, uint8_t qos)
{
	if (c->nsubs == EDGED_MQTT_MAX_SUBS || strlen(topic) + 10 > EDGED_MQTT_MAX_PACKET)
		return -1;
	c->subs[c->nsubs] = topic;
	c->sub_qos[c->nsubs] = qos > 1 ? 1 : qos;
	c->nsubs++;
	/* One SUBSCRIBE in flight at a time; the rest go after its SUBACK. */
	if (c->state == EDGED_MQTT_CONNECTED && c->sub_id == 0)
		return send_subscribe(c, c->subscribed);
	return 0;
}

static int send_msg(edged_mqtt *c, edged_mqtt_msg *m)
{
	if (m->sent)
		m->pkt[0] |= 0x08; /* DUP: a resend [MQTT-3.3.1-1] */
	m->sent = 1;
	m->sent_at = now(c);
	return send_packet(c, m->pkt, m->len);
}

long edged_mqtt_publish(edged_mqtt *c, const char *topic, const uint8_t *payload,
                        size_t len, uint8_t qos)
{
	uint8_t tmp[EDGED_MQTT_MAX_PACKET];
	uint8_t *pkt = tmp;
	edged_mqtt_msg *m = NULL;
	size_t tlen = strlen(topic), rem, i;
	int k;
	qos = qos > 1 ? 1 : qos;
	rem = 2 + tlen + (qos ? 2 : 0) + len;
	if (rem + 5 > EDGED_MQTT_MAX_PACKET)
		return -1;
	if (qos) {
		for (k = 0; k < EDGED_MQTT_MAX_INFLIGHT && !m; k++)
			if (!c->inflight[k].used)
				m = &c->inflight[k];
		if (!m)
			return -1;
		pkt = m->pkt;
	}
	i = put_header(pkt, (uint8_t)(0x30 | qos << 1), rem);
	i += put_str(pkt + i, topic, tlen);
	if (qos) {
		m->id = new_id(c);
		pkt[i++] = (uint8_t)(m->id >> 8);
		pkt[i++] = (uint8_t)m->id;
	}
	memcpy(pkt + i, payload, len);
	i += len;
	if (!qos)
		return c->state == EDGED_MQTT_CONNECTED ? (send_packet(c, pkt, i) ? -1 : 0) : 0;
	m->used = 1;
	m->sent = 0;
	m->len = (uint16_t)i;
	if (c->state == EDGED_MQTT_CONNECTED)
		send_msg(c, m);
	return m->id;
}

int edged_mqtt_inflight(const edged_mqtt *c)
{
	int k, n = 0;
	for (k = 0; k < EDGED_MQTT_MAX_INFLIGHT; k++)
		n += c->inflight[k].used;
	return n;
}

int edged_mqtt_disconnect(edged_mqtt *c)
{
	static const uint8_t pkt[2] = {0xE0, 0x00};
	c->state = EDGED_MQTT_IDLE;
	return send_packet(c, pkt, 2);
}

static void on_connack(edged_mqtt *c, const uint8_t *p, size_t n)
{
	int k;
	if (n < 4 || p[3] != 0) {
		/* Refused: wait an ack timeout before trying again, so a
		 * refusal followed by RESET cannot become a tight loop. */
		c->state = EDGED_MQTT_IDLE;
		c->since = now(c);
		return;
	}
	c->state = EDGED_MQTT_CONNECTED;
	/* Resend what edged has not acknowledged, in order of sending. */
	for (k = 0; k < EDGED_MQTT_MAX_INFLIGHT; k++)
		if (c->inflight[k].used)
			send_msg(c, &c->inflight[k]);
	/* Without a stored session (or with a SUBSCRIBE unanswered),
	 * subscribe again. */
	if (!(p[2] & 1))
		c->subscribed = 0;
	if (c->subscribed < c->nsubs)
		send_subscribe(c, c->subscribed);
}

static void on_publish(edged_mqtt *c, const uint8_t *p, size_t n, size_t hdr)
{
	uint8_t qos = (p[0] >> 1) & 3;
	size_t i = hdr, tlen;
	uint8_t ack[4];
	if (n < i + 2)
		return;
	tlen = (size_t)p[i] << 8 | p[i + 1];
	i += 2;
	if (n < i + tlen + (qos ? 2u : 0u))
		return;
	if (qos) {
		ack[0] = 0x40;
		ack[1] = 2;
		ack[2] = p[i + tlen];
		ack[3] = p[i + tlen + 1];
		send_packet(c, ack, 4);
	}
	if (c->cfg.on_message)
		c->cfg.on_message(c->cfg.ctx, (const char *)p + i, tlen,
		                  p + i + tlen + (qos ? 2 : 0), n - i - tlen - (qos ? 2u : 0u));
}

static void on_packet(edged_mqtt *c, const uint8_t *p, size_t n)
{
	size_t hdr = 2;
	uint16_t id;
	int k;
	while (hdr < n && hdr < 5 && (p[hdr - 1] & 0x80))
		hdr++;
	id = n >= hdr + 2 ? (uint16_t)(p[hdr] << 8 | p[hdr + 1]) : 0;
	switch (p[0] >> 4) {
	case 2: /* CONNACK */
		on_connack(c, p, n);
		break;
	case 3: /* PUBLISH */
		on_publish(c, p, n, hdr);
		break;
	case 4: /* PUBACK */
		for (k = 0; k < EDGED_MQTT_MAX_INFLIGHT; k++)
			if (c->inflight[k].used && c->inflight[k].id == id)
				c->inflight[k].used = 0;
		break;
	case 9: /* SUBACK */
		if (c->sub_id && id == c->sub_id) {
			c->sub_id = 0;
			c->subscribed = (uint8_t)(c->sub_idx + 1);
			if (c->subscribed < c->nsubs)
				send_subscribe(c, c->subscribed);
		}
		break;
	case 13: /* PINGRESP */
		c->ping_out = 0;
		break;
	default:
		break;
	}
}

static void reconnect(edged_mqtt *c)
{
	edged_mqtt_connect(c);
}

void edged_mqtt_input(edged_mqtt *c, const uint8_t *p, size_t n)
{
	uint8_t ch;
	const uint8_t *body;
	size_t len;
	while (n--) {
		if (edged_decoder_feed(&c->dec, *p++, &ch, &body, &len) != 1)
			continue; /* dropped frames are recovered by the timeouts */
		if (ch == EDGED_CONTROL_CHANNEL) {
			if (len >= 2 && body[0] == EDGED_OP_RESET && body[1] == c->cfg.channel) {
				c->resets++;
				reconnect(c);
			}
		} else if (ch == c->cfg.channel) {
			on_packet(c, body, len);
		}
	}
}

void edged_mqtt_poll(edged_mqtt *c)
{
	uint32_t t = now(c), to = ACK_TIMEOUT(c);
	int k;
	switch (c->state) {
	case EDGED_MQTT_IDLE:
		if ((uint32_t)(t - c->since) >= to)
			reconnect(c);
		return;
	case EDGED_MQTT_CONNECTING:
		if ((uint32_t)(t - c->since) >= to)
			reconnect(c);
		return;
	default:
		break;
	}
	if (c->ping_out && (uint32_t)(t - c->since) >= to) {
		reconnect(c);
		return;
	}
	if (c->sub_id && (uint32_t)(t - c->sub_at) >= to) {
		reconnect(c);
		return;
	}
	for (k = 0; k < EDGED_MQTT_MAX_INFLIGHT; k++) {
		if (c->inflight[k].used && (uint32_t)(t - c->inflight[k].sent_at) >= to) {
			reconnect(c);
			return;
		}
	}
	if (c->cfg.keepalive_s && !c->ping_out &&
	    (uint32_t)(t - c->last_tx) >= (uint32_t)c->cfg.keepalive_s * 500u) {
		static const uint8_t ping[2] = {0xC0, 0x00};
		c->ping_out = 1;
		c->since = t;
		send_packet(c, ping, 2);
	}
}
