/* Fuzzes the peer-link codec on arbitrary bytes: HELLO, messages, and records under fixed keys. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Records in the seeds are sealed with this key (tx of the sender, rx here), counters from 0. */
#define FUZZ_WIRE_KEY_BYTE 0x5a

/* A decoded message keeps its promises and re-encodes to the same bytes. */
static void check_msg(const uint8_t *msg, size_t len)
{
    pc_wire_msg m;
    int rc = pc_wire_msg_decode(msg, len, &m);
    if (rc != 0) {
        if (rc != PC_EPARSE)
            abort();
        return;
    }
    if (len < 1 || m.type != (pc_msg_type)msg[0] || m.type < PC_MSG_PING || m.type > PC_MSG_TICKET)
        abort();
    uint8_t out[32];
    switch (m.type) {
    case PC_MSG_HAVE: {
        if (m.nhave < 1 || m.nhave > PC_WIRE_HAVE_MAX || len != 3 + 9 * (size_t)m.nhave || m.have != msg + 3)
            abort();
        pc_wire_range *r = malloc(sizeof(*r) * m.nhave);
        uint8_t *again = malloc(len);
        if (r == NULL || again == NULL)
            abort();
        for (uint32_t i = 0; i < m.nhave; i++) {
            pc_wire_have_at(&m, i, &r[i]);
            if (r[i].lo > r[i].hi)
                abort();
        }
        if (pc_wire_have_encode(r, m.nhave, again) != len || memcmp(again, msg, len) != 0)
            abort();
        free(r);
        free(again);
        break;
    }
    case PC_MSG_TICKET: /* a ticket's length; its contents are the link's to check */
        if (m.dlen < 110 || m.dlen > PC_TICKET_MAX || m.data != msg + 1 || (size_t)m.dlen != len - 1)
            abort();
        break;
    case PC_MSG_DATA:
        if (m.dlen < 1 || m.data != msg + 9 || (size_t)m.dlen != len - 9)
            abort();
        if (pc_wire_data_header(m.id, m.offset, out) != 9 || memcmp(out, msg, 9) != 0)
            abort();
        break;
    default:
        if (m.data != NULL || m.have != NULL)
            abort();
        if (pc_wire_msg_encode(&m, out) != len || memcmp(out, msg, len) != 0)
            abort();
        break;
    }
}

static void check_hello(const uint8_t *data, size_t size)
{
    pc_wire_hello h;
    size_t used = 0;
    int rc = pc_wire_hello_decode(data, size, &h, &used);
    if (rc != 0) {
        if (rc != PC_EAGAIN && rc != PC_EPARSE)
            abort();
        return;
    }
    if (used > size || h.role > PC_WIRE_ACCEPTOR || h.ticket_len < 1 || h.ticket_len > PC_TICKET_MAX ||
        used != 4 + 1 + 1 + PC_WIRE_KX_LEN + 2 + h.ticket_len + 4)
        abort();
    uint8_t out[PC_WIRE_HELLO_MAX];
    if (pc_wire_hello_encode(&h, out) != (int)used || memcmp(out, data, used) != 0)
        abort();
    /* every shorter prefix is "need more" */
    if (pc_wire_hello_decode(data, used - 1, &h, &used) != PC_EAGAIN)
        abort();
}

static void fixed_keys(pc_wire_keys *k)
{
    memset(k, 0, sizeof(*k));
    memset(k->tx, FUZZ_WIRE_KEY_BYTE, sizeof(k->tx));
    memset(k->rx, FUZZ_WIRE_KEY_BYTE, sizeof(k->rx));
}

/* Opens records one after the other, as a link reading a stream does. */
static void check_records(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL)
        abort();
    if (size)
        memcpy(buf, data, size); /* opened in place */
    pc_wire_keys k;
    fixed_keys(&k);
    size_t off = 0;
    for (;;) {
        uint8_t *msg = NULL;
        size_t mlen = 0, used = 0;
        uint64_t n = k.rx_n;
        int rc = pc_wire_open(&k, buf + off, size - off, &msg, &mlen, &used);
        if (rc != 0) {
            if ((rc != PC_EAGAIN && rc != PC_ETOOBIG && rc != PC_EBADSIG) || k.rx_n != n)
                abort();
            break;
        }
        if (k.rx_n != n + 1 || used > size - off || used != 4 + mlen + PC_WIRE_TAG_LEN || mlen < 1 ||
            mlen > PC_WIRE_PLAIN_MAX || msg != buf + off + 4)
            abort();
        check_msg(msg, mlen);
        off += used;
    }
    free(buf);
}

/* The input as a plaintext message: sealed, it opens to the same bytes, and only with the right keys. */
static void check_seal(const uint8_t *data, size_t size)
{
    if (size < 1 || size > PC_WIRE_PLAIN_MAX)
        return;
    uint8_t *rec = malloc(size + 4 + PC_WIRE_TAG_LEN);
    if (rec == NULL)
        abort();
    memcpy(rec + 4, data, size);
    pc_wire_keys tx, rx;
    fixed_keys(&tx);
    fixed_keys(&rx);
    tx.tx_n = rx.rx_n = size; /* any counter, as long as both agree */
    size_t n = pc_wire_seal(&tx, rec, size);
    uint8_t *msg;
    size_t mlen, used;
    if (n != size + 4 + PC_WIRE_TAG_LEN || tx.tx_n != size + 1)
        abort();
    if (pc_wire_open(&rx, rec, n - 1, &msg, &mlen, &used) != PC_EAGAIN)
        abort();
    rx.rx_n++; /* the wrong counter: refused, and the record is spent (a failed open may wipe it) */
    if (pc_wire_open(&rx, rec, n, &msg, &mlen, &used) != PC_EBADSIG)
        abort();
    memcpy(rec + 4, data, size);
    tx.tx_n = size;
    rx.rx_n = size;
    n = pc_wire_seal(&tx, rec, size);
    if (pc_wire_open(&rx, rec, n, &msg, &mlen, &used) != 0 || msg != rec + 4 || mlen != size || used != n ||
        memcmp(msg, data, size) != 0 || rx.rx_n != size + 1)
        abort();
    free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (sodium_init() < 0)
            abort();
        ready = 1;
    }
    check_hello(data, size);
    check_msg(data, size);
    check_records(data, size);
    check_seal(data, size);
    return 0;
}
