/* client: per-client shares of a ring's connections and request slots. Each ring keeps a table
 * of the client addresses that hold something (open addressing with linear probing, at most half
 * full: sized at start for every connection and slot having its own client). The key is the
 * IPv4 address (mapped) or the IPv6 /64, which one subscriber usually gets whole. The hash is
 * keyed with a random seed per ring, so that a client cannot choose addresses that collide.
 * The bottom of ioring/ with canned.c and proxy.c: it calls no other file. */
#include <string.h>
#include <sys/random.h>

#include "ioring/internal.h"

void client_key(uint8_t out[16], const struct sockaddr_storage *a, socklen_t len)
{
    static const uint8_t zeros[10] = {0};
    addr_v6(out, a, len);
    bool mapped = out[10] == 0xff && out[11] == 0xff && memcmp(out, zeros, sizeof(zeros)) == 0;
    if (a->ss_family == AF_INET6 && !mapped) {
        memset(out + 8, 0, 8); /* the /64 */
    }
}

static uint32_t key_hash(const struct ring *r, const uint8_t key[16])
{
    uint64_t a = 0;
    uint64_t b = 0;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t h = (a ^ r->client_seed[0]) * 0x9e3779b97f4a7c15u;
    h = (h ^ (h >> 29) ^ b ^ r->client_seed[1]) * 0xbf58476d1ce4e5b9u;
    return (uint32_t)(h ^ (h >> 32));
}

/* find returns the entry of `key`, or the free entry where it would go. Bounded: the table is
 * at most half full, so a free entry comes within clients_mask + 1 probes. */
static struct client_entry *find(struct ring *r, const uint8_t key[16])
{
    uint32_t i = key_hash(r, key) & r->clients_mask;
    for (uint32_t n = 0; n <= r->clients_mask; n++) {
        struct client_entry *e = &r->clients[i];
        if (!e->used || memcmp(e->key, key, 16) == 0) {
            return e;
        }
        i = (i + 1) & r->clients_mask;
    }
    ASSERT(0 && "client table full");
    return NULL;
}

/* drop frees `e` once it holds nothing, shifting later entries of its run back into the gap
 * (deletion without tombstones, so probes stay short). */
static void drop(struct ring *r, struct client_entry *e)
{
    if (e->conns > 0 || e->slots > 0) {
        return;
    }
    uint32_t hole = (uint32_t)(e - r->clients);
    uint32_t i = hole;
    for (uint32_t n = 0; n <= r->clients_mask; n++) { /* bounded by the table */
        i = (i + 1) & r->clients_mask;
        struct client_entry *x = &r->clients[i];
        if (!x->used) {
            break;
        }
        uint32_t home = key_hash(r, x->key) & r->clients_mask;
        /* x may move into the hole if its home is not cyclically within (hole, i]. */
        bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            r->clients[hole] = *x;
            hole = i;
        }
    }
    memset(&r->clients[hole], 0, sizeof(r->clients[hole]));
}

static struct client_entry *get(struct ring *r, const uint8_t key[16])
{
    struct client_entry *e = find(r, key);
    if (!e->used) {
        e->used = true;
        memcpy(e->key, key, 16);
        e->conns = 0;
        e->slots = 0;
    }
    return e;
}

bool client_conn_take(struct ring *r, const uint8_t key[16])
{
    struct client_entry *e = get(r, key);
    if (e->conns >= r->conns_per_client) {
        drop(r, e);
        return false;
    }
    e->conns++;
    ASSERT(e->conns <= r->num_conns);
    return true;
}

void client_conn_put(struct ring *r, const uint8_t key[16])
{
    struct client_entry *e = find(r, key);
    ASSERT(e->used);
    ASSERT(e->conns > 0);
    e->conns--;
    drop(r, e);
}

bool client_slot_take(struct ring *r, const uint8_t key[16])
{
    uint32_t share = r->eng->opts.max_inflight_per_client;
    struct client_entry *e = get(r, key);
    if (share != 0 && e->slots >= share) {
        drop(r, e);
        return false;
    }
    e->slots++;
    ASSERT(e->slots <= r->eng->opts.max_inflight);
    return true;
}

void client_slot_put(struct ring *r, const uint8_t key[16])
{
    struct client_entry *e = find(r, key);
    ASSERT(e->used);
    ASSERT(e->slots > 0);
    e->slots--;
    drop(r, e);
}
