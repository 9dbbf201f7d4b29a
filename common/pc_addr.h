/*
 * IP addresses as the tracker keeps them: 16 bytes, IPv4 as an IPv4-mapped IPv6 address (::ffff:a.b.c.d).
 */
#ifndef PC_ADDR_H
#define PC_ADDR_H

#include <stdint.h>

#include "pc_error.h"

/* The literal of |addr| (dotted for IPv4). */
void pc_addr_format(const uint8_t addr[16], char out[46]);
/* Parses an IPv4 or IPv6 literal into the 16-byte form; PC_EPARSE. */
int pc_addr_parse(const char *s, uint8_t addr[16]) PC_MUST_CHECK;
/* Whether another host could dial |addr|: not unspecified (0.0.0.0, ::), multicast (224/4, ff00::/8) or
 * the IPv4 broadcast. (On Linux a dial of 0.0.0.0 reaches the dialler's own loopback: a peer announcing
 * the address it listens on would pass every test on one host and be unreachable from any other.) */
int pc_addr_dialable(const uint8_t addr[16]);
/* 127/8 or ::1: reachable from the same host only. */
int pc_addr_loopback(const uint8_t addr[16]);

#endif
