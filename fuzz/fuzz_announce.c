/* Fuzzes the tracker's announce decoder and the ticket decoder on arbitrary bytes. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "announce.h"
#include "pc_ticket.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (sodium_init() < 0)
            abort();
        ready = 1;
    }
    pc_announce a;
    pc_announce_error err;
    if (pc_announce_decode((const char *)data, size, &a, &err) == 0) {
        /* a decoded announce keeps its promises */
        if (a.port == 0 || !pc_video_id_valid(a.video, strlen(a.video)) || strlen(a.rendition) == 0 ||
            strlen(a.rendition) > PC_REND_ID_MAX || a.numwant > PC_NUMWANT_MAX || a.event < PC_EV_STARTED ||
            a.event > PC_EV_STOPPED || (a.have_hi != PC_NONE && (a.have_lo > a.have_hi || a.have_hi >= PC_SEGMENT_MAX)) ||
            (a.need != PC_NONE && a.need >= PC_SEGMENT_MAX) || (a.event == PC_EV_STARTED && !a.has_proof) ||
            (a.event != PC_EV_STARTED && !a.has_session) || a.counters.stalls > UINT32_MAX)
            abort();
    } else if (err.code == NULL || err.message[0] == '\0') {
        abort(); /* every refusal says why */
    }
    uint8_t pk[PC_ED25519_PK_LEN];
    memset(pk, 7, sizeof(pk));
    pc_ticket t;
    if (pc_ticket_open(pk, data, size, &t) == 0)
        abort(); /* nobody holds the secret key for this public key */
    return 0;
}
