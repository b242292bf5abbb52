/*
 * example.c - a sensor talking MQTT to edged over a serial line.
 *
 * Opens the tty given on the command line (raw, 115200 8N1), CONNECTs on
 * channel 0 as client id "cref-example", SUBSCRIBEs to cref/in, PUBLISHes N
 * QoS 1 messages to cref/out, waits for their PUBACKs and for one message on
 * cref/in, then DISCONNECTs and exits 0. Exits 2 after 20 s without success.
 *
 * Build: gcc -std=c99 -Wall -Wextra -O2 -o example example.c edged_mqtt.c edged_frame.c
 * Run:   ./example /dev/ttyUSB0 [N]
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "edged_mqtt.h"

static int got_message;

static int fd_write(void *ctx, const uint8_t *p, size_t n)
{
	int fd = *(int *)ctx;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static uint32_t millis(void *ctx)
{
	struct timespec ts;
	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)(ts.tv_sec * 1000u + ts.tv_nsec / 1000000);
}

static void on_message(void *ctx, const char *topic, size_t tlen, const uint8_t *p, size_t n)
{
	(void)ctx;
	printf("message on %.*s: %.*s\n", (int)tlen, topic, (int)n, (const char *)p);
	got_message = 1;
}

static int open_raw(const char *path)
{
	struct termios t;
	int fd = open(path, O_RDWR | O_NOCTTY);
	if (fd < 0)
		return -1;
	if (tcgetattr(fd, &t) == 0) {
		t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXOFF);
		t.c_oflag &= ~(tcflag_t)OPOST;
		t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
		t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | CSTOPB);
		t.c_cflag |= CS8 | CREAD | CLOCAL;
		t.c_cc[VMIN] = 0;
		t.c_cc[VTIME] = 0;
		cfsetispeed(&t, B115200);
		cfsetospeed(&t, B115200);
		tcsetattr(fd, TCSANOW, &t);
	}
	return fd;
}

int main(int argc, char **argv)
{
	static edged_mqtt c; /* about 1 KiB with the default sizes */
	edged_mqtt_config cfg;
	int fd, n = 5, sent = 0;
	uint32_t start;
	char payload[32];

	if (argc < 2) {
		fprintf(stderr, "usage: %s TTY [N]\n", argv[0]);
		return 1;
	}
	if (argc > 2)
		n = atoi(argv[2]);
	fd = open_raw(argv[1]);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	memset(&cfg, 0, sizeof cfg);
	cfg.channel = 0;
	cfg.client_id = "cref-example";
	cfg.keepalive_s = 10;
	cfg.ack_timeout_ms = 1000;
	cfg.write = fd_write;
	cfg.millis = millis;
	cfg.on_message = on_message;
	cfg.ctx = &fd;
	edged_mqtt_init(&c, &cfg);
	edged_mqtt_subscribe(&c, "cref/in", 1);
	edged_mqtt_connect(&c);

	start = millis(NULL);
	for (;;) {
		struct pollfd pfd = {0};
		uint8_t buf[256];
		ssize_t r;
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 5) > 0) {
			r = read(fd, buf, sizeof buf);
			if (r > 0)
				edged_mqtt_input(&c, buf, (size_t)r);
		}
		edged_mqtt_poll(&c);
		while (sent < n && c.state == EDGED_MQTT_CONNECTED) {
			int len = snprintf(payload, sizeof payload, "reading %d", sent);
			if (edged_mqtt_publish(&c, "cref/out", (const uint8_t *)payload, (size_t)len, 1) < 0)
				break; /* in-flight window full */
			sent++;
		}
		if (sent == n && edged_mqtt_inflight(&c) == 0 && got_message && c.sub_id == 0) {
			edged_mqtt_disconnect(&c);
			printf("done: %d published, %u connects, %u resets\n", n,
			       (unsigned)c.connects, (unsigned)c.resets);
			close(fd);
			return 0;
		}
		if ((uint32_t)(millis(NULL) - start) > 20000u) {
			fprintf(stderr, "timeout: sent %d, in flight %d, message %d, state %d\n",
			        sent, edged_mqtt_inflight(&c), got_message, c.state);
			return 2;
		}
	}
}
