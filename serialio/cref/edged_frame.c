/* edged_frame.c - see edged_frame.h. */
#include "edged_frame.h"

uint16_t edged_crc16(uint16_t crc, const uint8_t *p, size_t n)
{
	/* Bitwise: 2 bytes of RAM and a few dozen of flash instead of a
	 * 512-byte table, which matters on an ATmega328P. */
	while (n--) {
		uint8_t i;
		crc ^= (uint16_t)(*p++) << 8;
		for (i = 0; i < 8; i++)
			crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
	}
	return crc;
}

/* Streaming COBS encoder state. */
typedef struct {
	uint8_t *out;
	size_t len;
	size_t code_at;
	uint8_t code;
} cobs_enc;

static void cobs_begin(cobs_enc *e, uint8_t *out, size_t at)
{
	e->out = out;
	e->code_at = at;
	e->len = at + 1;
	e->code = 1;
}

static void cobs_next(cobs_enc *e)
{
	e->out[e->code_at] = e->code;
	e->code_at = e->len++;
	e->code = 1;
}

static void cobs_put(cobs_enc *e, uint8_t b)
{
	if (e->code == 0xFF)
		cobs_next(e); /* close a full block lazily: canonical COBS */
	if (b == 0) {
		cobs_next(e);
		return;
	}
	e->out[e->len++] = b;
	e->code++;
}

static size_t cobs_end(cobs_enc *e)
{
	e->out[e->code_at] = e->code;
	return e->len;
}

size_t edged_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst)
{
	cobs_enc e;
	size_t i;
	cobs_begin(&e, dst, 0);
	for (i = 0; i < n; i++)
		cobs_put(&e, src[i]);
	return cobs_end(&e);
}

size_t edged_frame_encode(uint8_t channel, const uint8_t *body, size_t n, uint8_t *out)
{
	cobs_enc e;
	size_t i, len;
	uint16_t crc = edged_crc16(EDGED_CRC_INIT, &channel, 1);
	crc = edged_crc16(crc, body, n);
	out[0] = 0;
	cobs_begin(&e, out, 1);
	cobs_put(&e, channel);
	for (i = 0; i < n; i++)
		cobs_put(&e, body[i]);
	cobs_put(&e, (uint8_t)(crc >> 8));
	cobs_put(&e, (uint8_t)crc);
	len = cobs_end(&e);
	out[len++] = 0;
	return len;
}

void edged_decoder_init(edged_decoder *d, uint8_t *buf, size_t cap)
{
	d->buf = buf;
	d->cap = cap;
	d->len = 0;
	d->code = 0;
	d->left = 0;
	d->in_frame = 0;
	d->overflow = 0;
}

static void dec_add(edged_decoder *d, uint8_t b)
{
	if (d->len == d->cap) {
		d->overflow = 1;
		return;
	}
	d->buf[d->len++] = b;
}

long edged_mqtt_packet_len(const uint8_t *p, size_t n)
{
	unsigned long rem = 0, mul = 1;
	size_t i;
	for (i = 1; i < n; i++) {
		if (i > 4)
			return -1;
		rem += (unsigned long)(p[i] & 0x7Fu) * mul;
		if (!(p[i] & 0x80u))
			return (long)(1 + i + rem);
		mul <<= 7;
	}
	return n > 4 ? -1 : 0;
}

static int dec_end(edged_decoder *d, uint8_t *channel, const uint8_t **body, size_t *len)
{
	int r;
	size_t n;
	if (d->overflow)
		r = EDGED_DROP_LARGE;
	else if (d->left != 0)
		r = EDGED_DROP_COBS;
	else if (d->len < 4)
		r = EDGED_DROP_SHORT;
	else {
		n = d->len - 2;
		if (edged_crc16(EDGED_CRC_INIT, d->buf, n) !=
		    (uint16_t)((uint16_t)d->buf[n] << 8 | d->buf[n + 1]))
			r = EDGED_DROP_CRC;
		else if (d->buf[0] != EDGED_CONTROL_CHANNEL &&
		         edged_mqtt_packet_len(d->buf + 1, n - 1) != (long)(n - 1))
			r = EDGED_DROP_LENGTH;
		else {
			*channel = d->buf[0];
			*body = d->buf + 1;
			*len = n - 1;
			r = 1;
		}
	}
	d->len = 0;
	d->code = 0;
	d->left = 0;
	d->in_frame = 0;
	d->overflow = 0;
	return r;
}

int edged_decoder_feed(edged_decoder *d, uint8_t b, uint8_t *channel,
                       const uint8_t **body, size_t *len)
{
	if (b == 0)
		return d->in_frame ? dec_end(d, channel, body, len) : 0;
	d->in_frame = 1;
	if (d->overflow)
		return 0;
	if (d->left == 0) { /* a code byte */
		if (d->code != 0 && d->code != 0xFF)
			dec_add(d, 0);
		d->code = b;
		d->left = (uint8_t)(b - 1);
		return 0;
	}
	dec_add(d, b);
	d->left--;
	return 0;
}
