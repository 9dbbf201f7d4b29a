/*
 * What the kernel knows of a TCP connection (TCP_INFO). Apart from the rest because its struct tcp_info
 * (linux/tcp.h, with the byte counts) cannot be included beside glibc's netinet/tcp.h, which libuv's
 * headers bring in.
 */
#ifndef PC_TCPINFO_H
#define PC_TCPINFO_H

#include <stdint.h>

/* Bytes sent on |fd| that its other end acknowledged plus bytes received from it (Linux 4.1 or later);
 * UINT64_MAX when they cannot be read. */
uint64_t pc_tcp_moved(int fd);

#endif
