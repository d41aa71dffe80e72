/* dns.c - DNS over UDP and TCP (RFC 1035 §4, RFC 7766): one entry per query and its answer.
 *
 * Over UDP every feed() is exactly one datagram (queries to the server, answers to the
 * client); over TCP messages carry a 2-byte length prefix and are reassembled per
 * direction. Queries wait in a bounded list until an answer with the same ID and question
 * arrives, in any order (TCP pipelining answers out of order). The `dns` section is read
 * by the proxy's DNS listener to learn IP -> host name mappings, so its shape is a
 * contract (docs/entries.md). Names are written without the trailing dot ("." is the
 * root), with dig's escapes for odd bytes (\. \\ \DDD), so they are always ASCII.
 *
 * Untrusted input: compression pointers must point strictly before the label sequence
 * that contains them (no loops, all 14 offset bits), names are capped at 255 octets, every
 * count and RDLENGTH is checked against the message end. A bad UDP datagram becomes one
 * error entry and parsing goes on; a bad TCP stream stops parsing (st_conn_fail). */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "entry_json.h"
#include "proto.h"

#define DNS_HEADER_LEN 12
#define DNS_NAME_MAX 255          /* octets on the wire, RFC 1035 §2.3.4 */
#define DNS_NAME_TEXT_MAX 1024    /* 255 octets, each at most 4 chars (\DDD) */
#define DNS_MAX_JUMPS 64          /* compression pointers followed per name */
#define DNS_MAX_PENDING 256       /* queries waiting for an answer, per connection */
#define DNS_MAX_RECORDS 64        /* records listed per section (the rest are counted) */
#define DNS_RDATA_HEX_MAX 64      /* bytes of unknown RDATA shown as hex */

struct dns_query {
    uint16_t id;
    uint16_t qtype, qclass;
    uint8_t opcode;
    bool has_question;
    char *name; /* malloc'd text, NULL without a question */
    uint64_t start_us;
    uint64_t wire_bytes;
};

struct dns_stream {
    uint8_t *buf; /* one TCP message being reassembled (2-byte prefix included) */
    size_t len, cap;
};

struct dns_state {
    bool tcp;
    struct dns_query pending[DNS_MAX_PENDING]; /* in arrival order */
    size_t npending;
    struct dns_stream stream[2];
    uint64_t last_us[2];
    uint64_t bad_datagrams; /* UDP datagrams that could not be parsed */
};

/* --- wire helpers --- */

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

struct dns_msg {
    const uint8_t *d;
    size_t len;
};

/* A growing text buffer with a hard cap; overflow sets `full` and drops the rest. */
struct text {
    char *s;
    size_t len, cap;
    bool full;
};

static void text_putn(struct text *t, const char *s, size_t n)
{
    if (t->full || t->len + n + 1 > t->cap) {
        t->full = true;
        return;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(struct text *t, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    text_putn(t, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* Decodes the (possibly compressed) name at *off into `out` as text and moves *off past
 * the name's bytes in place. Returns 0, or -1 with `why` set. Pointers must go strictly
 * backwards from the start of the label sequence they interrupt, which rules out loops;
 * the jump cap and the 255-octet cap bound the work anyway. */
static int dns_name(const struct dns_msg *m, size_t *off, struct text *out, const char **why)
{
    size_t p = *off, seq_start = p, end = 0, octets = 0;
    bool jumped = false;
    int jumps = 0;
    out->len = 0;
    out->s[0] = '\0';
    for (;;) {
        if (p >= m->len) {
            *why = "name runs past the message";
            return -1;
        }
        uint8_t c = m->d[p];
        if ((c & 0xC0) == 0xC0) {
            if (p + 1 >= m->len) {
                *why = "truncated compression pointer";
                return -1;
            }
            size_t target = (size_t)(c & 0x3F) << 8 | m->d[p + 1];
            if (target >= seq_start) {
                *why = "compression pointer does not point backwards";
                return -1;
            }
            if (++jumps > DNS_MAX_JUMPS) {
                *why = "too many compression pointers";
                return -1;
            }
            if (!jumped) end = p + 2;
            jumped = true;
            p = seq_start = target;
            continue;
        }
        if (c & 0xC0) {
            *why = "reserved label type";
            return -1;
        }
        octets += (size_t)c + 1;
        if (octets > DNS_NAME_MAX) {
            *why = "name longer than 255 octets";
            return -1;
        }
        if (c == 0) {
            if (!jumped) end = p + 1;
            break;
        }
        if (p + 1 + c > m->len) {
            *why = "label runs past the message";
            return -1;
        }
        if (out->len > 0) text_putn(out, ".", 1);
        for (size_t i = 0; i < c; i++) {
            uint8_t b = m->d[p + 1 + i];
            if (b == '.' || b == '\\') {
                char esc[2] = {'\\', (char)b};
                text_putn(out, esc, 2);
            } else if (b > 0x20 && b < 0x7f) {
                text_putn(out, (const char *)&b, 1);
            } else {
                text_printf(out, "\\%03u", b);
            }
        }
        p += 1 + (size_t)c;
    }
    if (out->len == 0) text_putn(out, ".", 1);
    *off = end;
    return 0;
}

static const struct {
    uint16_t type;
    const char *name;
} rr_types[] = {
    {1, "A"},        {2, "NS"},      {5, "CNAME"},  {6, "SOA"},    {12, "PTR"},     {13, "HINFO"},
    {15, "MX"},      {16, "TXT"},    {17, "RP"},    {18, "AFSDB"}, {24, "SIG"},     {25, "KEY"},
    {28, "AAAA"},    {29, "LOC"},    {33, "SRV"},   {35, "NAPTR"}, {36, "KX"},      {37, "CERT"},
    {39, "DNAME"},   {41, "OPT"},    {42, "APL"},   {43, "DS"},    {44, "SSHFP"},   {45, "IPSECKEY"},
    {46, "RRSIG"},   {47, "NSEC"},   {48, "DNSKEY"}, {49, "DHCID"}, {50, "NSEC3"},  {51, "NSEC3PARAM"},
    {52, "TLSA"},    {53, "SMIMEA"}, {55, "HIP"},   {59, "CDS"},   {60, "CDNSKEY"}, {61, "OPENPGPKEY"},
    {62, "CSYNC"},   {63, "ZONEMD"}, {64, "SVCB"},  {65, "HTTPS"}, {99, "SPF"},     {108, "EUI48"},
    {109, "EUI64"},  {249, "TKEY"},  {250, "TSIG"}, {251, "IXFR"}, {252, "AXFR"},   {255, "ANY"},
    {256, "URI"},    {257, "CAA"},
};

/* Type mnemonic, or "TYPEnnn" (RFC 3597) written into buf. */
static const char *type_name(uint16_t type, char *buf, size_t cap)
{
    for (size_t i = 0; i < sizeof(rr_types) / sizeof(rr_types[0]); i++)
        if (rr_types[i].type == type) return rr_types[i].name;
    snprintf(buf, cap, "TYPE%u", type);
    return buf;
}

static const char *class_name(uint16_t cls, char *buf, size_t cap)
{
    switch (cls) {
    case 1: return "IN";
    case 3: return "CH";
    case 4: return "HS";
    case 254: return "NONE";
    case 255: return "ANY";
    }
    snprintf(buf, cap, "CLASS%u", cls);
    return buf;
}

static const char *const rcode_names[] = {
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",   "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",  "DSOTYPENI", NULL,      NULL,      NULL,       NULL,
    "BADVERS", "BADKEY",  "BADTIME",  "BADMODE",   "BADNAME", "BADALG",  "BADTRUNC", "BADCOOKIE",
};

static const char *rcode_name(unsigned rcode, char *buf, size_t cap)
{
    if (rcode < sizeof(rcode_names) / sizeof(rcode_names[0]) && rcode_names[rcode])
        return rcode_names[rcode];
    snprintf(buf, cap, "RCODE%u", rcode);
    return buf;
}

static const char *opcode_name(unsigned opcode, char *buf, size_t cap)
{
    static const char *const names[] = {"QUERY", "IQUERY", "STATUS", NULL, "NOTIFY", "UPDATE", "DSO"};
    if (opcode < sizeof(names) / sizeof(names[0]) && names[opcode]) return names[opcode];
    snprintf(buf, cap, "OPCODE%u", opcode);
    return buf;
}

/* --- RDATA to text, in the presentation format dig uses (names without the dot) --- */

/* A character-string (RFC 1035 §3.3) at *p within [.., end); appended raw (UTF-8 is kept by
 * the JSON layer, other bytes escaped there). */
static int char_string(const struct dns_msg *m, size_t *p, size_t end, struct text *out)
{
    if (*p >= end) return -1;
    size_t n = m->d[*p];
    if (*p + 1 + n > end) return -1;
    text_putn(out, (const char *)m->d + *p + 1, n);
    *p += 1 + n;
    return 0;
}

/* Decodes a name inside RDATA that must end by `end`. */
static int rdata_name(const struct dns_msg *m, size_t *p, size_t end, struct text *out,
                      const char **why)
{
    char buf[DNS_NAME_TEXT_MAX];
    struct text name = {buf, 0, sizeof(buf), false};
    if (dns_name(m, p, &name, why) < 0) return -1;
    if (*p > end) {
        *why = "name runs past RDLENGTH";
        return -1;
    }
    text_putn(out, name.s, name.len);
    return 0;
}

static int rdata_text(const struct dns_msg *m, uint16_t type, size_t off, size_t rdlen,
                      struct text *out, const char **why)
{
    size_t p = off, end = off + rdlen;
    char addr[INET6_ADDRSTRLEN];
    switch (type) {
    case 1: /* A */
        if (rdlen != 4) goto bad_len;
        inet_ntop(AF_INET, m->d + off, addr, sizeof(addr));
        text_putn(out, addr, strlen(addr));
        return 0;
    case 28: /* AAAA */
        if (rdlen != 16) goto bad_len;
        inet_ntop(AF_INET6, m->d + off, addr, sizeof(addr));
        text_putn(out, addr, strlen(addr));
        return 0;
    case 2: case 5: case 12: case 39: /* NS, CNAME, PTR, DNAME */
        if (rdata_name(m, &p, end, out, why) < 0) return -1;
        break;
    case 15: /* MX */
        if (rdlen < 3) goto bad_len;
        text_printf(out, "%u ", rd16(m->d + p));
        p += 2;
        if (rdata_name(m, &p, end, out, why) < 0) return -1;
        break;
    case 33: /* SRV: priority weight port target */
        if (rdlen < 7) goto bad_len;
        text_printf(out, "%u %u %u ", rd16(m->d + p), rd16(m->d + p + 2), rd16(m->d + p + 4));
        p += 6;
        if (rdata_name(m, &p, end, out, why) < 0) return -1;
        break;
    case 6: /* SOA: mname rname serial refresh retry expire minimum */
        if (rdata_name(m, &p, end, out, why) < 0) return -1;
        text_putn(out, " ", 1);
        if (rdata_name(m, &p, end, out, why) < 0) return -1;
        if (end - p != 20) goto bad_len;
        text_printf(out, " %u %u %u %u %u", rd32(m->d + p), rd32(m->d + p + 4), rd32(m->d + p + 8),
                    rd32(m->d + p + 12), rd32(m->d + p + 16));
        p = end;
        break;
    case 16: case 99: /* TXT, SPF: the strings joined by one space */
        if (rdlen == 0) goto bad_len;
        while (p < end) {
            if (p > off) text_putn(out, " ", 1);
            if (char_string(m, &p, end, out) < 0) goto bad_len;
        }
        break;
    case 257: /* CAA: flags tag value */
        if (rdlen < 2) goto bad_len;
        text_printf(out, "%u ", m->d[p]);
        p++;
        if (char_string(m, &p, end, out) < 0) goto bad_len;
        text_putn(out, " ", 1);
        text_putn(out, (const char *)m->d + p, end - p);
        p = end;
        break;
    default: { /* RFC 3597 generic form: \# len hex */
        text_printf(out, "\\# %zu", rdlen);
        if (rdlen) text_putn(out, " ", 1);
        size_t shown = rdlen < DNS_RDATA_HEX_MAX ? rdlen : DNS_RDATA_HEX_MAX;
        for (size_t i = 0; i < shown; i++) text_printf(out, "%02x", m->d[off + i]);
        if (shown < rdlen) text_putn(out, "...", 3);
        p = end;
        break;
    }
    }
    if (p != end) goto bad_len;
    return 0;
bad_len:
    *why = "RDATA does not match its type";
    return -1;
}

/* --- messages --- */

struct dns_header {
    uint16_t id, flags, qd, an, ns, ar;
};

static void header(const struct dns_msg *m, struct dns_header *h)
{
    h->id = rd16(m->d);
    h->flags = rd16(m->d + 2);
    h->qd = rd16(m->d + 4);
    h->an = rd16(m->d + 6);
    h->ns = rd16(m->d + 8);
    h->ar = rd16(m->d + 10);
}

/* The first question of a message (name, type, class); *off ends after all questions. */
struct dns_question {
    bool present;
    char name[DNS_NAME_TEXT_MAX];
    uint16_t qtype, qclass;
};

static int parse_questions(const struct dns_msg *m, const struct dns_header *h, size_t *off,
                           struct dns_question *q, json_t *list, const char **why)
{
    q->present = false;
    for (unsigned i = 0; i < h->qd; i++) {
        char buf[DNS_NAME_TEXT_MAX], tb[16], cb[16];
        struct text name = {buf, 0, sizeof(buf), false};
        if (dns_name(m, off, &name, why) < 0) return -1;
        if (*off + 4 > m->len) {
            *why = "question runs past the message";
            return -1;
        }
        uint16_t qtype = rd16(m->d + *off), qclass = rd16(m->d + *off + 2);
        *off += 4;
        if (i == 0) {
            q->present = true;
            memcpy(q->name, name.s, name.len + 1);
            q->qtype = qtype;
            q->qclass = qclass;
        }
        if (list != NULL && i < DNS_MAX_RECORDS)
            json_array_append_new(list, json_pack("{s:s,s:s,s:s}", "name", name.s, "type",
                                                  type_name(qtype, tb, sizeof(tb)), "class",
                                                  class_name(qclass, cb, sizeof(cb))));
    }
    return 0;
}

struct dns_rr_summary {
    int ext_rcode; /* from an OPT record, -1 without one */
};

/* Parses `count` resource records into `list` (may be NULL to only skip them). */
static int parse_rrs(const struct dns_msg *m, unsigned count, size_t *off, json_t *list,
                     struct dns_rr_summary *sum, const char **why)
{
    for (unsigned i = 0; i < count; i++) {
        char nbuf[DNS_NAME_TEXT_MAX], tb[16], cb[16];
        struct text name = {nbuf, 0, sizeof(nbuf), false};
        if (dns_name(m, off, &name, why) < 0) return -1;
        if (*off + 10 > m->len) {
            *why = "record header runs past the message";
            return -1;
        }
        const uint8_t *h = m->d + *off;
        uint16_t type = rd16(h), cls = rd16(h + 2), rdlen = rd16(h + 8);
        uint32_t ttl = rd32(h + 4);
        *off += 10;
        if (*off + rdlen > m->len) {
            *why = "RDLENGTH runs past the message";
            return -1;
        }
        size_t rdata = *off;
        *off += rdlen;
        if (type == 41) { /* OPT (EDNS): extended rcode in the TTL's top byte, not listed */
            if (sum) sum->ext_rcode = (int)(ttl >> 24);
            continue;
        }
        char dbuf[2048];
        struct text data = {dbuf, 0, sizeof(dbuf), false};
        dbuf[0] = '\0';
        if (rdata_text(m, type, rdata, rdlen, &data, why) < 0) return -1;
        if (list == NULL || json_array_size(list) >= DNS_MAX_RECORDS) continue;
        json_t *rr = json_object();
        json_object_set_new(rr, "name", json_string(name.s));
        json_object_set_new(rr, "type", json_string(type_name(type, tb, sizeof(tb))));
        if (cls != 1) json_object_set_new(rr, "class", json_string(class_name(cls, cb, sizeof(cb))));
        json_object_set_new(rr, "ttl", json_integer(ttl));
        json_object_set_new(rr, "data", st_json_bytes_string(data.s, data.len));
        json_array_append_new(list, rr);
    }
    return 0;
}

static void query_clear(struct dns_query *q)
{
    free(q->name);
    q->name = NULL;
}

static void set_question_request(struct st_entry *e, const struct dns_query *q)
{
    char tb[16];
    e->request.present = true;
    e->request.wire_bytes = q->wire_bytes;
    if (q->has_question) {
        e->request.method = st_arena_strdup(&e->arena, type_name(q->qtype, tb, sizeof(tb)));
        e->request.path = st_arena_strdup(&e->arena, q->name);
        st_entry_set_summary(e, "%s %s", e->request.method, q->name);
    } else {
        st_entry_set_summary(e, "DNS query without a question");
    }
}

/* Section of a query that got no answer. */
static json_t *query_section(const struct dns_state *s, const struct dns_query *q)
{
    char ob[16], tb[16], cb[16];
    json_t *sec = json_pack("{s:i,s:s,s:s}", "id", q->id, "transport", s->tcp ? "tcp" : "udp",
                            "opcode", opcode_name(q->opcode, ob, sizeof(ob)));
    json_t *qs = json_array();
    if (q->has_question)
        json_array_append_new(qs, json_pack("{s:s,s:s,s:s}", "name", q->name, "type",
                                            type_name(q->qtype, tb, sizeof(tb)), "class",
                                            class_name(q->qclass, cb, sizeof(cb))));
    json_object_set_new(sec, "questions", qs);
    return sec;
}

static void emit_unanswered(struct dns_state *s, struct st_conn *conn, struct dns_query *q,
                            const char *error, uint64_t now_us)
{
    struct st_entry *e = st_conn_entry_new(conn, ST_PROTO_DNS);
    if (e != NULL) {
        e->start_us = q->start_us;
        e->end_us = now_us > q->start_us ? now_us : q->start_us;
        set_question_request(e, q);
        e->section = query_section(s, q);
        st_entry_set_error(e, "%s", error);
        st_conn_emit(conn, e);
    }
    query_clear(q);
}

static void pending_remove(struct dns_state *s, size_t i)
{
    query_clear(&s->pending[i]);
    memmove(&s->pending[i], &s->pending[i + 1], (s->npending - i - 1) * sizeof(s->pending[0]));
    s->npending--;
}

/* An error entry for a message that could not be parsed (UDP: parsing goes on). */
static void emit_parse_error(struct dns_state *s, struct st_conn *conn, enum st_dir dir,
                             const char *why, size_t len, uint64_t now_us)
{
    s->bad_datagrams++;
    struct st_entry *e = st_conn_entry_new(conn, ST_PROTO_DNS);
    if (e == NULL) return;
    e->start_us = e->end_us = now_us;
    struct st_message *msg = dir == ST_DIR_TO_SERVER ? &e->request : &e->response;
    msg->present = true;
    msg->wire_bytes = len;
    st_entry_set_error(e, "parse error: %s", why);
    st_entry_set_summary(e, "DNS parse error");
    st_conn_emit(conn, e);
}

static int on_query(struct dns_state *s, struct st_conn *conn, const struct dns_msg *m,
                    const struct dns_header *h, uint64_t wire_bytes, uint64_t now_us,
                    const char **why)
{
    size_t off = DNS_HEADER_LEN;
    struct dns_question q;
    if (parse_questions(m, h, &off, &q, NULL, why) < 0) return -1;
    if (s->npending == DNS_MAX_PENDING) { /* the oldest has waited longest: give it up */
        st_conn_count_unanswered(conn, ST_LIMIT_PENDING, 1);
        emit_unanswered(s, conn, &s->pending[0], "no answer (too many pending queries)", now_us);
        pending_remove(s, 0);
    }
    struct dns_query *p = &s->pending[s->npending];
    memset(p, 0, sizeof(*p));
    p->id = h->id;
    p->opcode = (h->flags >> 11) & 0xF;
    p->start_us = now_us;
    p->wire_bytes = wire_bytes;
    p->has_question = q.present;
    if (q.present) {
        p->name = strdup(q.name);
        if (p->name == NULL) {
            *why = "out of memory";
            return -1;
        }
        p->qtype = q.qtype;
        p->qclass = q.qclass;
    }
    s->npending++;
    return 0;
}

/* The pending query this answer belongs to: same ID and question; an answer without a
 * question (some FORMERR answers) matches by ID alone. -1 when none. */
static long find_query(const struct dns_state *s, uint16_t id, const struct dns_question *q)
{
    for (size_t i = 0; i < s->npending; i++) {
        const struct dns_query *p = &s->pending[i];
        if (p->id != id) continue;
        if (!q->present) return (long)i;
        if (p->has_question && p->qtype == q->qtype && p->qclass == q->qclass &&
            strcasecmp(p->name, q->name) == 0)
            return (long)i;
    }
    return -1;
}

static int on_answer(struct dns_state *s, struct st_conn *conn, const struct dns_msg *m,
                     const struct dns_header *h, uint64_t wire_bytes, uint64_t now_us,
                     const char **why)
{
    char ob[16], rb[16];
    size_t off = DNS_HEADER_LEN;
    struct dns_question *q = malloc(sizeof(*q));
    json_t *sec = json_object();
    json_t *questions = json_array(), *answers = json_array(), *auth = json_array(),
           *add = json_array();
    struct dns_rr_summary sum = {.ext_rcode = -1};
    int rc = -1;
    if (q == NULL || sec == NULL || questions == NULL || answers == NULL || auth == NULL || add == NULL) {
        *why = "out of memory";
        goto done;
    }
    if (parse_questions(m, h, &off, q, questions, why) < 0) goto parse_failed;
    if (parse_rrs(m, h->an, &off, answers, &sum, why) < 0 ||
        parse_rrs(m, h->ns, &off, auth, NULL, why) < 0 ||
        parse_rrs(m, h->ar, &off, add, &sum, why) < 0)
        goto parse_failed;

    unsigned rcode = h->flags & 0xF;
    if (sum.ext_rcode > 0) rcode |= (unsigned)sum.ext_rcode << 4;
    json_object_set_new(sec, "id", json_integer(h->id));
    json_object_set_new(sec, "transport", json_string(s->tcp ? "tcp" : "udp"));
    json_object_set_new(sec, "opcode", json_string(opcode_name((h->flags >> 11) & 0xF, ob, sizeof(ob))));
    json_object_set_new(sec, "rcode", json_string(rcode_name(rcode, rb, sizeof(rb))));
    json_object_set_new(sec, "flags",
                        json_pack("{s:b,s:b,s:b,s:b,s:b,s:b}", "aa", h->flags & 0x0400, "tc",
                                  h->flags & 0x0200, "rd", h->flags & 0x0100, "ra",
                                  h->flags & 0x0080, "ad", h->flags & 0x0020, "cd",
                                  h->flags & 0x0010));
    json_object_set(sec, "questions", questions);
    json_object_set(sec, "answers", answers);
    if (json_array_size(auth)) json_object_set(sec, "authorities", auth);
    if (json_array_size(add)) json_object_set(sec, "additionals", add);

    struct st_entry *e = st_conn_entry_new(conn, ST_PROTO_DNS);
    long qi = find_query(s, h->id, q);
    if (e == NULL) {
        if (qi >= 0) pending_remove(s, (size_t)qi);
        rc = 0;
        goto done;
    }
    if (qi >= 0) {
        set_question_request(e, &s->pending[qi]);
        e->start_us = s->pending[qi].start_us;
        pending_remove(s, (size_t)qi);
    } else {
        /* An answer whose query we did not see (or already matched): keep it, it still
         * tells which names map to which addresses. */
        char tb[16];
        e->start_us = now_us;
        if (q->present) {
            e->request.method = st_arena_strdup(&e->arena, type_name(q->qtype, tb, sizeof(tb)));
            e->request.path = st_arena_strdup(&e->arena, q->name);
            st_entry_set_summary(e, "%s %s", e->request.method, q->name);
        } else {
            st_entry_set_summary(e, "DNS answer");
        }
    }
    e->end_us = now_us > e->start_us ? now_us : e->start_us;
    e->response.present = true;
    e->response.status = (int)rcode;
    e->response.status_text = st_arena_strdup(&e->arena, rcode_name(rcode, rb, sizeof(rb)));
    e->response.wire_bytes = wire_bytes;
    if (rcode != 0) st_entry_set_error(e, "%s", e->response.status_text);
    e->section = sec;
    sec = NULL;
    st_conn_emit(conn, e);
    rc = 0;
    goto done;

parse_failed:
    /* A malformed answer still ends its query when the ID matches. */
    if (q->present || h->qd == 0) {
        long qi = find_query(s, h->id, q);
        if (qi >= 0) {
            char msg[128];
            snprintf(msg, sizeof(msg), "parse error: malformed answer: %s", *why);
            emit_unanswered(s, conn, &s->pending[qi], msg, now_us);
            pending_remove(s, (size_t)qi);
            rc = s->tcp ? -1 : 0; /* UDP: this entry is the error; TCP: the stream is lost */
        }
    }
done:
    free(q);
    json_decref(questions);
    json_decref(answers);
    json_decref(auth);
    json_decref(add);
    json_decref(sec);
    return rc;
}

/* One whole message from `dir`. Returns 0, or -1 with `why` when it cannot be parsed. */
static int on_message(struct dns_state *s, struct st_conn *conn, enum st_dir dir,
                      const uint8_t *d, size_t len, uint64_t wire_bytes, uint64_t now_us,
                      const char **why)
{
    struct dns_msg m = {d, len};
    struct dns_header h;
    if (len < DNS_HEADER_LEN) {
        *why = "message shorter than the 12-byte header";
        return -1;
    }
    header(&m, &h);
    bool is_answer = h.flags & 0x8000;
    if (is_answer != (dir == ST_DIR_TO_CLIENT)) {
        *why = is_answer ? "an answer from the client" : "a query from the server";
        return -1;
    }
    /* Every question takes at least 5 bytes and every record 11: reject absurd counts
     * before walking them. */
    size_t min = (size_t)h.qd * 5 + ((size_t)h.an + h.ns + h.ar) * 11;
    if (min > len - DNS_HEADER_LEN) {
        *why = "section counts exceed the message";
        return -1;
    }
    return is_answer ? on_answer(s, conn, &m, &h, wire_bytes, now_us, why)
                     : on_query(s, conn, &m, &h, wire_bytes, now_us, why);
}

/* --- module --- */

static void *dns_create(struct st_conn *conn)
{
    struct dns_state *s = calloc(1, sizeof(*s));
    if (s == NULL) return NULL;
    s->tcp = st_conn_info(conn)->transport == ST_TRANSPORT_TCP;
    return s;
}

/* TCP: reassembles 2-byte-length-prefixed messages, any split. */
static int feed_tcp(struct dns_state *s, struct st_conn *conn, enum st_dir dir, const uint8_t *data,
                    size_t len, uint64_t now_us)
{
    struct dns_stream *st = &s->stream[dir];
    while (len > 0) {
        size_t want = st->len < 2 ? 2 : 2 + (size_t)rd16(st->buf);
        if (st->cap < want) {
            if (st_conn_mem_charge(conn, want - st->cap) < 0) {
                st_conn_fail(conn, "DNS message larger than the connection's memory budget");
                return -1;
            }
            uint8_t *nb = realloc(st->buf, want);
            if (nb == NULL) {
                st_conn_mem_refund(conn, want - st->cap);
                st_conn_fail(conn, "out of memory");
                return -1;
            }
            st->buf = nb;
            st->cap = want;
        }
        size_t take = want - st->len < len ? want - st->len : len;
        memcpy(st->buf + st->len, data, take);
        st->len += take;
        data += take;
        len -= take;
        if (st->len < 2 || st->len < 2 + (size_t)rd16(st->buf)) continue;
        const char *why = NULL;
        if (on_message(s, conn, dir, st->buf + 2, st->len - 2, st->len, now_us, &why) < 0) {
            st_conn_fail(conn, "DNS: %s", why);
            return -1;
        }
        st->len = 0;
    }
    return 0;
}

static int dns_feed(void *state, struct st_conn *conn, enum st_dir dir, const uint8_t *data,
                    size_t len, uint64_t now_us)
{
    struct dns_state *s = state;
    s->last_us[dir] = now_us;
    if (s->tcp) return feed_tcp(s, conn, dir, data, len, now_us);
    const char *why = NULL;
    if (on_message(s, conn, dir, data, len, len, now_us, &why) < 0)
        emit_parse_error(s, conn, dir, why, len, now_us);
    return 0;
}

static void dns_close(void *state, struct st_conn *conn, enum st_close_reason reason,
                      uint64_t now_us)
{
    struct dns_state *s = state;
    const char *error = reason == ST_CLOSE_RESET ? "no answer (connection reset)" : "no answer";
    for (size_t i = 0; i < s->npending; i++) emit_unanswered(s, conn, &s->pending[i], error, now_us);
    s->npending = 0;
}

static void dns_destroy(void *state)
{
    struct dns_state *s = state;
    if (s == NULL) return;
    for (size_t i = 0; i < s->npending; i++) query_clear(&s->pending[i]);
    free(s->stream[0].buf);
    free(s->stream[1].buf);
    free(s);
}

const struct st_proto_ops st_dns_ops = {
    .proto = ST_PROTO_DNS,
    .create = dns_create,
    .feed = dns_feed,
    .close = dns_close,
    .destroy = dns_destroy,
};
