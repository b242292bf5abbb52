/*
 * edged_frame.h - the cobs-crc16 serial frame format of edged (serialio/WIRE.md),
 * sensor side. Portable C99, no malloc, no I/O.
 *
 * A frame is channel(1) + body(N) + CRC-16/CCITT-FALSE(2, big-endian) over
 * channel and body, COBS-encoded and sent as 0x00, encoded bytes, 0x00.
 */
#ifndef EDGED_FRAME_H
#define EDGED_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define EDGED_CONTROL_CHANNEL 255u /* link control */
#define EDGED_OP_RESET 0x01u       /* RESET c: gateway tore down channel c */
#define EDGED_CRC_INIT 0xFFFFu

/* Bytes on the wire for a frame with an n-byte body, delimiters included. */
#define EDGED_WIRE_MAX(n) ((n) + 3u + ((n) + 3u) / 254u + 1u + 2u)

/* Reasons edged_decoder_feed drops a frame (negative return values). */
enum {
	EDGED_DROP_COBS = -1,   /* not valid COBS */
	EDGED_DROP_SHORT = -2,  /* under 4 decoded bytes */
	EDGED_DROP_LARGE = -3,  /* over the decoder's buffer */
	EDGED_DROP_CRC = -4,    /* CRC mismatch */
	EDGED_DROP_LENGTH = -5  /* MQTT remaining length disagrees */
};

/* CRC-16/CCITT-FALSE: start with EDGED_CRC_INIT; "123456789" gives 0x29B1. */
uint16_t edged_crc16(uint16_t crc, const uint8_t *p, size_t n);

/* COBS-encodes n bytes of src into dst (room for n + n/254 + 1 bytes), no
 * delimiters. Returns the encoded length. */
size_t edged_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst);

/* Writes a whole wire frame (0x00, COBS of channel+body+CRC, 0x00) into out,
 * which has room for EDGED_WIRE_MAX(n) bytes. Returns its length. */
size_t edged_frame_encode(uint8_t channel, const uint8_t *body, size_t n, uint8_t *out);

/* Incremental decoder: COBS is decoded as bytes arrive, so buf needs room
 * for the largest frame only (channel + body + 2). */
typedef struct {
	uint8_t *buf;
	size_t cap;
	size_t len;
	uint8_t code;     /* current block's code byte, 0 before the first */
	uint8_t left;     /* data bytes left in the current block */
	uint8_t in_frame; /* bytes seen since the last 0x00 */
	uint8_t overflow;
} edged_decoder;

void edged_decoder_init(edged_decoder *d, uint8_t *buf, size_t cap);

/* Feeds one received byte. Returns 1 when it completed a valid frame (then
 * *channel, *body and *len describe it; body points into the decoder's buffer
 * and stays valid until the next call), 0 when no frame ended, or an
 * EDGED_DROP_* value when a frame was dropped. Empty frames are ignored. */
int edged_decoder_feed(edged_decoder *d, uint8_t byte, uint8_t *channel,
                       const uint8_t **body, size_t *len);

/* Parses an MQTT fixed header: returns the total packet length, 0 if p is
 * too short to tell, or -1 if the remaining length is malformed. */
long edged_mqtt_packet_len(const uint8_t *p, size_t n);

#endif
