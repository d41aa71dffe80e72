/* kafka.c - the Kafka wire protocol: one entry per request and its response.
 *
 * Both directions are split into size-prefixed frames. Only the first KAFKA_HEAD_MAX bytes
 * of a frame are kept (the rest, usually record data, is skipped while counted), which is
 * enough for the header, the topic names and the error codes that precede the records.
 * Requests wait in a bounded in-flight list until the response with their correlation id
 * arrives, in any order. Which response header applies depends on the request: flexible
 * request versions get response header v1 (tagged fields), except ApiVersions, whose
 * response header is always v0 (KIP-511). Produce with acks=0 gets no response, so its
 * entry is made at once.
 *
 * Flexible-version thresholds and API names follow the message specs of Apache Kafka 4.1
 * (clients/src/main/resources/common/message, each request's "flexibleVersions"). Topic
 * names and partitions are read for Produce, Fetch, ListOffsets, Metadata, OffsetCommit
 * and OffsetFetch; the group for the group APIs; error codes from those responses and the
 * top-level error of the simple ones. Versions that name topics by ID (Produce 13+,
 * Fetch 13+, OffsetCommit 10+) give the topic ID as text. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry_json.h"
#include "proto.h"

#define KAFKA_FRAME_MAX (100u * 1024 * 1024) /* Kafka's socket.request.max.bytes default */
#define KAFKA_HEAD_MAX (64 * 1024)           /* bytes of each frame kept for parsing */
#define KAFKA_INFLIGHT_MAX 256               /* requests waiting for a response */
#define KAFKA_TOPICS_MAX 32                  /* topic names listed per entry */
#define KAFKA_PARTITIONS_MAX 64              /* partitions listed (of the first topic) */
#define KAFKA_NAME_MAX 255                   /* bytes kept of a topic, group or client id */

/* --- API table --- */

static const struct {
    const char *name;
    int8_t flexible; /* first flexible version; -1: none */
} apis[] = {
    {"Produce", 9},                     /* 0 */
    {"Fetch", 12},                      /* 1 */
    {"ListOffsets", 6},                 /* 2 */
    {"Metadata", 9},                    /* 3 */
    {"LeaderAndIsr", 4},                /* 4 */
    {"StopReplica", 2},                 /* 5 */
    {"UpdateMetadata", 6},              /* 6 */
    {"ControlledShutdown", 3},          /* 7 */
    {"OffsetCommit", 8},                /* 8 */
    {"OffsetFetch", 6},                 /* 9 */
    {"FindCoordinator", 3},             /* 10 */
    {"JoinGroup", 6},                   /* 11 */
    {"Heartbeat", 4},                   /* 12 */
    {"LeaveGroup", 4},                  /* 13 */
    {"SyncGroup", 4},                   /* 14 */
    {"DescribeGroups", 5},              /* 15 */
    {"ListGroups", 3},                  /* 16 */
    {"SaslHandshake", -1},              /* 17 */
    {"ApiVersions", 3},                 /* 18 */
    {"CreateTopics", 5},                /* 19 */
    {"DeleteTopics", 4},                /* 20 */
    {"DeleteRecords", 2},               /* 21 */
    {"InitProducerId", 2},              /* 22 */
    {"OffsetForLeaderEpoch", 4},        /* 23 */
    {"AddPartitionsToTxn", 3},          /* 24 */
    {"AddOffsetsToTxn", 3},             /* 25 */
    {"EndTxn", 3},                      /* 26 */
    {"WriteTxnMarkers", 1},             /* 27 */
    {"TxnOffsetCommit", 3},             /* 28 */
    {"DescribeAcls", 2},                /* 29 */
    {"CreateAcls", 2},                  /* 30 */
    {"DeleteAcls", 2},                  /* 31 */
    {"DescribeConfigs", 4},             /* 32 */
    {"AlterConfigs", 2},                /* 33 */
    {"AlterReplicaLogDirs", 2},         /* 34 */
    {"DescribeLogDirs", 2},             /* 35 */
    {"SaslAuthenticate", 2},            /* 36 */
    {"CreatePartitions", 2},            /* 37 */
    {"CreateDelegationToken", 2},       /* 38 */
    {"RenewDelegationToken", 2},        /* 39 */
    {"ExpireDelegationToken", 2},       /* 40 */
    {"DescribeDelegationToken", 2},     /* 41 */
    {"DeleteGroups", 2},                /* 42 */
    {"ElectLeaders", 2},                /* 43 */
    {"IncrementalAlterConfigs", 1},     /* 44 */
    {"AlterPartitionReassignments", 0}, /* 45 */
    {"ListPartitionReassignments", 0},  /* 46 */
    {"OffsetDelete", -1},               /* 47 */
    {"DescribeClientQuotas", 1},        /* 48 */
    {"AlterClientQuotas", 1},           /* 49 */
    {"DescribeUserScramCredentials", 0}, /* 50 */
    {"AlterUserScramCredentials", 0},   /* 51 */
    {"Vote", 0},                        /* 52 */
    {"BeginQuorumEpoch", 1},            /* 53 */
    {"EndQuorumEpoch", 1},              /* 54 */
    {"DescribeQuorum", 0},              /* 55 */
    {"AlterPartition", 0},              /* 56 */
    {"UpdateFeatures", 0},              /* 57 */
    {"Envelope", 0},                    /* 58 */
    {"FetchSnapshot", 0},               /* 59 */
    {"DescribeCluster", 0},             /* 60 */
    {"DescribeProducers", 0},           /* 61 */
    {"BrokerRegistration", 0},          /* 62 */
    {"BrokerHeartbeat", 0},             /* 63 */
    {"UnregisterBroker", 0},            /* 64 */
    {"DescribeTransactions", 0},        /* 65 */
    {"ListTransactions", 0},            /* 66 */
    {"AllocateProducerIds", 0},         /* 67 */
    {"ConsumerGroupHeartbeat", 0},      /* 68 */
    {"ConsumerGroupDescribe", 0},       /* 69 */
    {"ControllerRegistration", 0},      /* 70 */
    {"GetTelemetrySubscriptions", 0},   /* 71 */
    {"PushTelemetry", 0},               /* 72 */
    {"AssignReplicasToDirs", 0},        /* 73 */
    {"ListConfigResources", 0},         /* 74 (ListClientMetricsResources before 4.1) */
    {"DescribeTopicPartitions", 0},     /* 75 */
    {"ShareGroupHeartbeat", 0},         /* 76 */
    {"ShareGroupDescribe", 0},          /* 77 */
    {"ShareFetch", 0},                  /* 78 */
    {"ShareAcknowledge", 0},            /* 79 */
    {"AddRaftVoter", 0},                /* 80 */
    {"RemoveRaftVoter", 0},             /* 81 */
    {"UpdateRaftVoter", 0},             /* 82 */
    {"InitializeShareGroupState", 0},   /* 83 */
    {"ReadShareGroupState", 0},         /* 84 */
    {"WriteShareGroupState", 0},        /* 85 */
    {"DeleteShareGroupState", 0},       /* 86 */
    {"ReadShareGroupStateSummary", 0},  /* 87 */
    {"StreamsGroupHeartbeat", 0},       /* 88 */
    {"StreamsGroupDescribe", 0},        /* 89 */
    {"DescribeShareGroupOffsets", 0},   /* 90 */
    {"AlterShareGroupOffsets", 0},      /* 91 */
    {"DeleteShareGroupOffsets", 0},     /* 92 */
};

#define KAFKA_API_COUNT ((int)(sizeof(apis) / sizeof(apis[0])))

enum {
    API_PRODUCE = 0, API_FETCH = 1, API_LIST_OFFSETS = 2, API_METADATA = 3,
    API_CONTROLLED_SHUTDOWN = 7, API_OFFSET_COMMIT = 8, API_OFFSET_FETCH = 9,
    API_FIND_COORDINATOR = 10, API_JOIN_GROUP = 11, API_HEARTBEAT = 12, API_LEAVE_GROUP = 13,
    API_SYNC_GROUP = 14, API_DESCRIBE_GROUPS = 15, API_LIST_GROUPS = 16, API_SASL_HANDSHAKE = 17,
    API_API_VERSIONS = 18, API_INIT_PRODUCER_ID = 22, API_SASL_AUTHENTICATE = 36,
};

/* Unknown keys (newer than the table) are assumed flexible: every API added since
 * Kafka 2.4 is. */
static bool is_flexible(int api, int version)
{
    if (api >= KAFKA_API_COUNT) return true;
    return apis[api].flexible >= 0 && version >= apis[api].flexible;
}

/* Error names from Kafka's Errors.java, by code; -1 is UNKNOWN_SERVER_ERROR. */
static const char *const error_names[] = {
    "NONE", "OFFSET_OUT_OF_RANGE", "CORRUPT_MESSAGE", "UNKNOWN_TOPIC_OR_PARTITION",
    "INVALID_FETCH_SIZE", "LEADER_NOT_AVAILABLE", "NOT_LEADER_OR_FOLLOWER", "REQUEST_TIMED_OUT",
    "BROKER_NOT_AVAILABLE", "REPLICA_NOT_AVAILABLE", "MESSAGE_TOO_LARGE", "STALE_CONTROLLER_EPOCH",
    "OFFSET_METADATA_TOO_LARGE", "NETWORK_EXCEPTION", "COORDINATOR_LOAD_IN_PROGRESS",
    "COORDINATOR_NOT_AVAILABLE", "NOT_COORDINATOR", "INVALID_TOPIC_EXCEPTION",
    "RECORD_LIST_TOO_LARGE", "NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    "INVALID_REQUIRED_ACKS", "ILLEGAL_GENERATION", "INCONSISTENT_GROUP_PROTOCOL",
    "INVALID_GROUP_ID", "UNKNOWN_MEMBER_ID", "INVALID_SESSION_TIMEOUT", "REBALANCE_IN_PROGRESS",
    "INVALID_COMMIT_OFFSET_SIZE", "TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED",
    "CLUSTER_AUTHORIZATION_FAILED", "INVALID_TIMESTAMP", "UNSUPPORTED_SASL_MECHANISM",
    "ILLEGAL_SASL_STATE", "UNSUPPORTED_VERSION", "TOPIC_ALREADY_EXISTS", "INVALID_PARTITIONS",
    "INVALID_REPLICATION_FACTOR", "INVALID_REPLICA_ASSIGNMENT", "INVALID_CONFIG", "NOT_CONTROLLER",
    "INVALID_REQUEST", "UNSUPPORTED_FOR_MESSAGE_FORMAT", "POLICY_VIOLATION",
    "OUT_OF_ORDER_SEQUENCE_NUMBER", "DUPLICATE_SEQUENCE_NUMBER", "INVALID_PRODUCER_EPOCH",
    "INVALID_TXN_STATE", "INVALID_PRODUCER_ID_MAPPING", "INVALID_TRANSACTION_TIMEOUT",
    "CONCURRENT_TRANSACTIONS", "TRANSACTION_COORDINATOR_FENCED",
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", "SECURITY_DISABLED", "OPERATION_NOT_ATTEMPTED",
    "KAFKA_STORAGE_ERROR", "LOG_DIR_NOT_FOUND", "SASL_AUTHENTICATION_FAILED", "UNKNOWN_PRODUCER_ID",
    "REASSIGNMENT_IN_PROGRESS", "DELEGATION_TOKEN_AUTH_DISABLED", "DELEGATION_TOKEN_NOT_FOUND",
    "DELEGATION_TOKEN_OWNER_MISMATCH", "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED",
    "DELEGATION_TOKEN_AUTHORIZATION_FAILED", "DELEGATION_TOKEN_EXPIRED", "INVALID_PRINCIPAL_TYPE",
    "NON_EMPTY_GROUP", "GROUP_ID_NOT_FOUND", "FETCH_SESSION_ID_NOT_FOUND",
    "INVALID_FETCH_SESSION_EPOCH", "LISTENER_NOT_FOUND", "TOPIC_DELETION_DISABLED",
    "FENCED_LEADER_EPOCH", "UNKNOWN_LEADER_EPOCH", "UNSUPPORTED_COMPRESSION_TYPE",
    "STALE_BROKER_EPOCH", "OFFSET_NOT_AVAILABLE", "MEMBER_ID_REQUIRED",
    "PREFERRED_LEADER_NOT_AVAILABLE", "GROUP_MAX_SIZE_REACHED", "FENCED_INSTANCE_ID",
    "ELIGIBLE_LEADERS_NOT_AVAILABLE", "ELECTION_NOT_NEEDED", "NO_REASSIGNMENT_IN_PROGRESS",
    "GROUP_SUBSCRIBED_TO_TOPIC", "INVALID_RECORD", "UNSTABLE_OFFSET_COMMIT",
    "THROTTLING_QUOTA_EXCEEDED", "PRODUCER_FENCED", "RESOURCE_NOT_FOUND", "DUPLICATE_RESOURCE",
    "UNACCEPTABLE_CREDENTIAL", "INCONSISTENT_VOTER_SET", "INVALID_UPDATE_VERSION",
    "FEATURE_UPDATE_FAILED", "PRINCIPAL_DESERIALIZATION_FAILURE", "SNAPSHOT_NOT_FOUND",
    "POSITION_OUT_OF_RANGE", "UNKNOWN_TOPIC_ID", "DUPLICATE_BROKER_REGISTRATION",
    "BROKER_ID_NOT_REGISTERED", "INCONSISTENT_TOPIC_ID", "INCONSISTENT_CLUSTER_ID",
    "TRANSACTIONAL_ID_NOT_FOUND", "FETCH_SESSION_TOPIC_ID_ERROR", "INELIGIBLE_REPLICA",
    "NEW_LEADER_ELECTED", "OFFSET_MOVED_TO_TIERED_STORAGE",
};

static const char *error_name(int code, char *buf, size_t cap)
{
    if (code == -1) return "UNKNOWN_SERVER_ERROR";
    if (code >= 0 && code < (int)(sizeof(error_names) / sizeof(error_names[0]))) return error_names[code];
    snprintf(buf, cap, "ERROR_%d", code);
    return buf;
}

/* --- a bounds-checked reader over the kept head of a frame --- */

struct kr {
    const uint8_t *p;
    size_t n;
    bool bad;  /* ran past the kept bytes or met something impossible */
    bool flex; /* compact strings/arrays and tagged fields */
};

static const uint8_t *kr_take(struct kr *r, size_t n)
{
    if (r->bad || r->n < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n, r->n -= n;
    return p;
}

static int64_t kr_int(struct kr *r, int bytes)
{
    const uint8_t *p = kr_take(r, (size_t)bytes);
    if (p == NULL) return 0;
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = v << 8 | p[i];
    if (bytes < 8 && (v >> (bytes * 8 - 1)) & 1) v |= ~0ULL << (bytes * 8); /* sign-extend */
    return (int64_t)v;
}

static uint32_t kr_uvarint(struct kr *r)
{
    uint32_t v = 0;
    for (int shift = 0; shift <= 28; shift += 7) {
        const uint8_t *p = kr_take(r, 1);
        if (p == NULL) return 0;
        v |= (uint32_t)(*p & 0x7f) << shift;
        if (!(*p & 0x80)) return v;
    }
    r->bad = true;
    return 0;
}

/* A (nullable) string: int16 length, or uvarint length+1 when flexible. *len = -1 for null. */
static const uint8_t *kr_string(struct kr *r, int32_t *len)
{
    int64_t n = r->flex ? (int64_t)kr_uvarint(r) - 1 : kr_int(r, 2);
    *len = -1;
    if (r->bad || n < 0) return NULL;
    const uint8_t *p = kr_take(r, (size_t)n);
    if (p) *len = (int32_t)n;
    return p;
}

static void kr_skip_string(struct kr *r)
{
    int32_t len;
    kr_string(r, &len);
}

/* BYTES / RECORDS: int32 length, or uvarint length+1 when flexible. */
static void kr_skip_bytes(struct kr *r)
{
    int64_t n = r->flex ? (int64_t)kr_uvarint(r) - 1 : kr_int(r, 4);
    if (n > 0) kr_take(r, (size_t)n);
}

/* Array length (-1 for null); the loop over it stops as soon as the reader goes bad. */
static int32_t kr_array(struct kr *r)
{
    int64_t n = r->flex ? (int64_t)kr_uvarint(r) - 1 : kr_int(r, 4);
    if (r->bad) return 0;
    if (n > (int64_t)r->n) { /* every element takes at least a byte */
        r->bad = true;
        return 0;
    }
    return (int32_t)n;
}

static void kr_skip_tags(struct kr *r)
{
    if (!r->flex) return;
    uint32_t n = kr_uvarint(r);
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        kr_uvarint(r);
        uint32_t size = kr_uvarint(r);
        kr_take(r, size);
    }
}

static void kr_skip_int_array(struct kr *r, int bytes)
{
    int32_t n = kr_array(r);
    if (n > 0) kr_take(r, (size_t)n * (size_t)bytes);
}

/* --- per-request state --- */

struct kafka_request {
    int32_t correlation_id;
    int16_t api_key, api_version;
    struct st_entry *entry; /* request half filled in, owned here until emitted */
    json_t *section;        /* the entry's kafka section, borrowed from the entry */
};

struct kafka_dir {
    uint8_t size_buf[4];
    size_t size_len;
    uint32_t frame_len, frame_seen;
    uint8_t *head; /* first KAFKA_HEAD_MAX bytes of the current frame */
    size_t head_len, head_cap;
    uint64_t start_us;
};

struct kafka_state {
    struct st_conn *conn;
    struct kafka_dir dir[2];
    struct kafka_request inflight[KAFKA_INFLIGHT_MAX];
    size_t ninflight;
    uint64_t unmatched_responses;
};

/* Collects topic names (and the first topic's partitions) into the section. */
struct topics {
    json_t *section;
    json_t *names, *partitions;
    int first_error; /* first non-zero error code seen, 0 when none */
};

static void topics_init(struct topics *t, json_t *section)
{
    t->section = section;
    t->names = json_object_get(section, "topics");
    t->partitions = json_object_get(section, "partitions");
    t->first_error = 0;
}

static void add_topic_name(struct topics *t, const uint8_t *name, int32_t len)
{
    if (t->names == NULL) {
        t->names = json_array();
        json_object_set_new(t->section, "topics", t->names);
    }
    if (json_array_size(t->names) >= KAFKA_TOPICS_MAX || name == NULL) return;
    json_t *s = st_json_bytes_string((const char *)name, (size_t)(len > KAFKA_NAME_MAX ? KAFKA_NAME_MAX : len));
    if (s == NULL) return;
    if (json_array_size(t->names) == 0) json_object_set(t->section, "topic", s);
    json_array_append_new(t->names, s);
}

/* A topic given by name (string) or, from `id_version` on, by UUID. */
static void read_topic(struct kr *r, struct topics *t, int version, int id_version)
{
    if (id_version >= 0 && version >= id_version) {
        const uint8_t *u = kr_take(r, 16);
        if (u == NULL) return;
        char text[37];
        snprintf(text, sizeof(text), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
                 u[14], u[15]);
        add_topic_name(t, (const uint8_t *)text, 36);
        return;
    }
    int32_t len;
    const uint8_t *name = kr_string(r, &len);
    if (name) add_topic_name(t, name, len);
}

/* Partition of the `topic_index`-th topic (only the first topic's are listed). */
static void add_partition(struct topics *t, size_t topic_index, int64_t partition)
{
    if (topic_index != 0) return;
    if (t->partitions == NULL) {
        t->partitions = json_array();
        json_object_set_new(t->section, "partitions", t->partitions);
    }
    if (json_array_size(t->partitions) < KAFKA_PARTITIONS_MAX)
        json_array_append_new(t->partitions, json_integer(partition));
}

static void note_error(struct topics *t, int64_t code)
{
    if (t->first_error == 0 && code != 0) t->first_error = (int)code;
}

static void set_group(json_t *section, struct kr *r)
{
    int32_t len;
    const uint8_t *g = kr_string(r, &len);
    if (g && len >= 0)
        json_object_set_new(section, "groupId",
                            st_json_bytes_string((const char *)g, (size_t)(len > KAFKA_NAME_MAX ? KAFKA_NAME_MAX : len)));
}

/* The array of topics, each with its array of partitions, that most topic APIs share
 * (both with tagged fields when flexible). A topic is named by UUID from `id_version` on
 * (-1: never); `list` adds the names to the entry, which requests do and responses need
 * not. `partition` reads one partition's own fields. */
typedef void (*partition_fn)(struct kr *r, int v, struct topics *t, size_t topic_index);

static void read_topic_partitions(struct kr *r, int v, struct topics *t, int id_version, bool list,
                                  partition_fn partition)
{
    int32_t n = kr_array(r);
    for (int32_t i = 0; i < n && !r->bad; i++) {
        if (list) read_topic(r, t, v, id_version);
        else if (id_version >= 0 && v >= id_version) kr_take(r, 16);
        else kr_skip_string(r);
        int32_t np = kr_array(r);
        for (int32_t j = 0; j < np && !r->bad; j++) {
            partition(r, v, t, (size_t)i);
            kr_skip_tags(r);
        }
        kr_skip_tags(r);
    }
}

/* --- request bodies --- */

static void produce_partition(struct kr *r, int v, struct topics *t, size_t topic_index)
{
    (void)v;
    add_partition(t, topic_index, kr_int(r, 4));
    kr_skip_bytes(r); /* records: usually past the kept head, which ends parsing */
}

static void parse_produce(struct kr *r, int v, struct topics *t, int *acks)
{
    if (v >= 3) kr_skip_string(r); /* transactional_id */
    int64_t a = kr_int(r, 2);
    if (!r->bad) *acks = (int)a;
    kr_int(r, 4);
    read_topic_partitions(r, v, t, 13, true, produce_partition);
}

static void fetch_partition(struct kr *r, int v, struct topics *t, size_t topic_index)
{
    add_partition(t, topic_index, kr_int(r, 4));
    if (v >= 9) kr_int(r, 4);
    kr_int(r, 8);
    if (v >= 12) kr_int(r, 4);
    if (v >= 5) kr_int(r, 8);
    kr_int(r, 4);
}

static void parse_fetch(struct kr *r, int v, struct topics *t)
{
    if (v <= 14) kr_int(r, 4); /* replica_id */
    kr_int(r, 4), kr_int(r, 4);
    if (v >= 3) kr_int(r, 4);
    if (v >= 4) kr_int(r, 1);
    if (v >= 7) kr_int(r, 4), kr_int(r, 4);
    read_topic_partitions(r, v, t, 13, true, fetch_partition);
}

static void list_offsets_partition(struct kr *r, int v, struct topics *t, size_t topic_index)
{
    add_partition(t, topic_index, kr_int(r, 4));
    if (v >= 4) kr_int(r, 4);
    kr_int(r, 8);
    if (v == 0) kr_int(r, 4);
}

static void parse_list_offsets(struct kr *r, int v, struct topics *t)
{
    kr_int(r, 4);
    if (v >= 2) kr_int(r, 1);
    read_topic_partitions(r, v, t, -1, true, list_offsets_partition);
}

static void parse_metadata(struct kr *r, int v, struct topics *t)
{
    int32_t n = kr_array(r); /* null (-1) asks for every topic */
    for (int32_t i = 0; i < n && !r->bad; i++) {
        if (v >= 10) kr_take(r, 16); /* topic id; the name follows (nullable) */
        read_topic(r, t, v, -1);
        kr_skip_tags(r);
    }
}

static void offset_commit_partition(struct kr *r, int v, struct topics *t, size_t topic_index)
{
    add_partition(t, topic_index, kr_int(r, 4));
    kr_int(r, 8);
    if (v >= 6) kr_int(r, 4);
    if (v == 1) kr_int(r, 8);
    kr_skip_string(r);
}

static void parse_offset_commit(struct kr *r, int v, struct topics *t, json_t *section)
{
    set_group(section, r);
    if (v >= 1) kr_int(r, 4), kr_skip_string(r);
    if (v >= 7) kr_skip_string(r);
    if (v >= 2 && v <= 4) kr_int(r, 8);
    read_topic_partitions(r, v, t, 10, true, offset_commit_partition);
}

static void parse_offset_fetch_topics(struct kr *r, int v, struct topics *t, int id_version)
{
    int32_t n = kr_array(r);
    for (int32_t i = 0; i < n && !r->bad; i++) {
        read_topic(r, t, v, id_version);
        int32_t np = kr_array(r);
        for (int32_t j = 0; j < np && !r->bad; j++) add_partition(t, (size_t)i, kr_int(r, 4));
        kr_skip_tags(r);
    }
}

static void parse_offset_fetch(struct kr *r, int v, struct topics *t, json_t *section)
{
    if (v <= 7) {
        set_group(section, r);
        parse_offset_fetch_topics(r, v, t, -1);
        return;
    }
    int32_t ng = kr_array(r); /* v8+: groups, of which the first is shown */
    if (ng <= 0) return;
    set_group(section, r);
    if (v >= 9) kr_skip_string(r), kr_int(r, 4);
    parse_offset_fetch_topics(r, v, t, 10);
}

/* --- response bodies: error codes (and topics when the request had none) --- */

/* partition_index then error_code: how most per-partition responses begin, and all an
 * OffsetCommit response partition holds. */
static void partition_error(struct kr *r, int v, struct topics *t, size_t topic_index)
{
    (void)v, (void)topic_index;
    kr_int(r, 4);
    note_error(t, kr_int(r, 2));
}

static void produce_partition_response(struct kr *r, int v, struct topics *t, size_t topic_index)
{
    partition_error(r, v, t, topic_index);
    kr_int(r, 8);
    if (v >= 2) kr_int(r, 8);
    if (v >= 5) kr_int(r, 8);
    if (v >= 8) {
        int32_t ne = kr_array(r);
        for (int32_t k = 0; k < ne && !r->bad; k++) kr_int(r, 4), kr_skip_string(r), kr_skip_tags(r);
        kr_skip_string(r);
    }
}

static void response_produce(struct kr *r, int v, struct topics *t)
{
    read_topic_partitions(r, v, t, 13, false, produce_partition_response);
}

static void fetch_partition_response(struct kr *r, int v, struct topics *t, size_t topic_index)
{
    partition_error(r, v, t, topic_index);
    kr_int(r, 8);
    if (v >= 4) kr_int(r, 8);
    if (v >= 5) kr_int(r, 8);
    if (v >= 4) {
        int32_t na = kr_array(r);
        for (int32_t k = 0; k < na && !r->bad; k++) kr_int(r, 8), kr_int(r, 8), kr_skip_tags(r);
    }
    if (v >= 11) kr_int(r, 4);
    kr_skip_bytes(r); /* records */
}

static void response_fetch(struct kr *r, int v, struct topics *t)
{
    if (v >= 1) kr_int(r, 4);
    if (v >= 7) note_error(t, kr_int(r, 2)), kr_int(r, 4);
    read_topic_partitions(r, v, t, 13, false, fetch_partition_response);
}

static void response_metadata(struct kr *r, int v, struct topics *t, bool list_topics)
{
    if (v >= 3) kr_int(r, 4);
    int32_t nb = kr_array(r);
    for (int32_t i = 0; i < nb && !r->bad; i++) {
        kr_int(r, 4), kr_skip_string(r), kr_int(r, 4);
        if (v >= 1) kr_skip_string(r);
        kr_skip_tags(r);
    }
    if (v >= 2) kr_skip_string(r);
    if (v >= 1) kr_int(r, 4);
    int32_t n = kr_array(r);
    for (int32_t i = 0; i < n && !r->bad; i++) {
        note_error(t, kr_int(r, 2));
        if (list_topics) read_topic(r, t, v, -1);
        else kr_skip_string(r);
        if (v >= 10) kr_take(r, 16);
        if (v >= 1) kr_int(r, 1);
        int32_t np = kr_array(r);
        for (int32_t j = 0; j < np && !r->bad; j++) {
            note_error(t, kr_int(r, 2));
            kr_int(r, 4), kr_int(r, 4);
            if (v >= 7) kr_int(r, 4);
            kr_skip_int_array(r, 4);
            kr_skip_int_array(r, 4);
            if (v >= 5) kr_skip_int_array(r, 4);
            kr_skip_tags(r);
        }
        if (v >= 8) kr_int(r, 4);
        kr_skip_tags(r);
    }
}

static void list_offsets_partition_response(struct kr *r, int v, struct topics *t,
                                            size_t topic_index)
{
    partition_error(r, v, t, topic_index);
    if (v == 0) kr_skip_int_array(r, 8);
    else kr_int(r, 8), kr_int(r, 8);
    if (v >= 4) kr_int(r, 4);
}

static void response_list_offsets(struct kr *r, int v, struct topics *t)
{
    if (v >= 2) kr_int(r, 4);
    read_topic_partitions(r, v, t, -1, false, list_offsets_partition_response);
}

static void response_offset_commit(struct kr *r, int v, struct topics *t)
{
    if (v >= 3) kr_int(r, 4);
    read_topic_partitions(r, v, t, 10, false, partition_error);
}

static void offset_fetch_partition_response(struct kr *r, int v, struct topics *t,
                                            size_t topic_index)
{
    (void)topic_index;
    kr_int(r, 4), kr_int(r, 8);
    if (v >= 5) kr_int(r, 4);
    kr_skip_string(r);
    note_error(t, kr_int(r, 2));
}

static void response_offset_fetch(struct kr *r, int v, struct topics *t)
{
    if (v >= 8) return; /* grouped layout: not parsed */
    if (v >= 3) kr_int(r, 4);
    read_topic_partitions(r, v, t, -1, false, offset_fetch_partition_response);
    if (v >= 2) note_error(t, kr_int(r, 2));
}

/* Responses whose top-level error code comes first, or right after throttle_time_ms from
 * a version on. */
static void response_simple(struct kr *r, int api, int v, struct topics *t)
{
    int throttle_from = -1;
    switch (api) {
    case API_API_VERSIONS: case API_SASL_HANDSHAKE: case API_SASL_AUTHENTICATE: break;
    case API_FIND_COORDINATOR:
        if (v >= 4) return; /* per-key errors */
        throttle_from = 1;
        break;
    case API_JOIN_GROUP: throttle_from = 2; break;
    case API_HEARTBEAT: case API_LEAVE_GROUP: case API_SYNC_GROUP: case API_LIST_GROUPS: throttle_from = 1; break;
    case API_INIT_PRODUCER_ID: throttle_from = 0; break;
    default: return;
    }
    if (throttle_from >= 0 && v >= throttle_from) kr_int(r, 4);
    note_error(t, kr_int(r, 2));
}

/* --- frames --- */

static void request_free(struct kafka_request *q)
{
    st_entry_free(q->entry);
    q->entry = NULL;
}

static void summarize(struct st_entry *e, json_t *section)
{
    const char *topic = json_string_value(json_object_get(section, "topic"));
    const char *group = json_string_value(json_object_get(section, "groupId"));
    const char *what = topic ? topic : group;
    if (what) {
        e->request.path = st_arena_strdup(&e->arena, what);
        st_entry_set_summary(e, "%s %s", e->request.method, what);
    } else {
        st_entry_set_summary(e, "%s", e->request.method);
    }
}

static void emit_request(struct st_conn *conn, struct kafka_request *q, const char *error,
                         uint64_t now_us)
{
    struct st_entry *e = q->entry;
    q->entry = NULL;
    if (e == NULL) return;
    if (error) {
        st_entry_set_error(e, "%s", error);
        if (now_us > e->end_us) e->end_us = now_us;
    }
    st_conn_emit(conn, e);
}

static void inflight_remove(struct kafka_state *s, size_t i)
{
    memmove(&s->inflight[i], &s->inflight[i + 1], (s->ninflight - i - 1) * sizeof(s->inflight[0]));
    s->ninflight--;
}

static int on_request(struct kafka_state *s, struct st_conn *conn, const uint8_t *d, size_t len,
                      uint32_t frame_len, uint64_t start_us, uint64_t now_us)
{
    struct kr r = {d, len, false, false};
    int api = (int)kr_int(&r, 2), version = (int)kr_int(&r, 2);
    int32_t corr = (int32_t)kr_int(&r, 4);
    if (r.bad || api < 0 || version < 0) {
        st_conn_fail(conn, "Kafka: bad request header (api key %d, version %d)", api, version);
        return -1;
    }
    int32_t client_len = -1;
    const uint8_t *client = NULL;
    if (!(api == API_CONTROLLED_SHUTDOWN && version == 0)) client = kr_string(&r, &client_len);
    bool flex = is_flexible(api, version);
    r.flex = flex;
    kr_skip_tags(&r);
    if (r.bad && len == frame_len) {
        st_conn_fail(conn, "Kafka: request header runs past its frame (api key %d)", api);
        return -1;
    }

    /* Without an entry (the shared budget refused it) the request is still tracked, so
     * that its response is recognised and skipped. */
    struct st_entry *e = st_conn_entry_new(conn, ST_PROTO_KAFKA);
    json_t *sec = json_object();
    if (sec == NULL) {
        st_entry_free(e);
        st_conn_fail(conn, "out of memory");
        return -1;
    }
    char namebuf[32];
    const char *name = api < KAFKA_API_COUNT ? apis[api].name : (snprintf(namebuf, sizeof(namebuf), "ApiKey%d", api), namebuf);
    if (e) {
        e->section = sec;
        e->start_us = start_us;
        e->end_us = now_us;
        e->request.present = true;
        e->request.wire_bytes = (uint64_t)frame_len + 4;
        e->request.method = st_arena_strdup(&e->arena, name);
    }
    json_object_set_new(sec, "apiKey", json_integer(api));
    json_object_set_new(sec, "apiName", json_string(name));
    json_object_set_new(sec, "apiVersion", json_integer(version));
    json_object_set_new(sec, "correlationId", json_integer(corr));
    if (client && client_len >= 0)
        json_object_set_new(sec, "clientId",
                            st_json_bytes_string((const char *)client,
                                                 (size_t)(client_len > KAFKA_NAME_MAX ? KAFKA_NAME_MAX : client_len)));

    struct topics t;
    topics_init(&t, sec);
    int acks = 1;
    if (!r.bad) {
        switch (api) {
        case API_PRODUCE: parse_produce(&r, version, &t, &acks); break;
        case API_FETCH: parse_fetch(&r, version, &t); break;
        case API_LIST_OFFSETS: parse_list_offsets(&r, version, &t); break;
        case API_METADATA: parse_metadata(&r, version, &t); break;
        case API_OFFSET_COMMIT: parse_offset_commit(&r, version, &t, sec); break;
        case API_OFFSET_FETCH: parse_offset_fetch(&r, version, &t, sec); break;
        case API_FIND_COORDINATOR:
            if (version <= 3) {
                set_group(sec, &r);
            } else {
                kr_int(&r, 1);
                if (kr_array(&r) > 0) set_group(sec, &r);
            }
            break;
        case API_JOIN_GROUP: case API_HEARTBEAT: case API_LEAVE_GROUP: case API_SYNC_GROUP:
            set_group(sec, &r);
            break;
        }
    }
    if (api == API_PRODUCE) json_object_set_new(sec, "acks", json_integer(acks));
    if (e) summarize(e, sec);
    else json_decref(sec), sec = NULL;

    if (api == API_PRODUCE && acks == 0) {
        if (e) st_conn_emit(conn, e); /* the broker sends nothing back */
        return 0;
    }
    if (api == API_SASL_HANDSHAKE && version == 0) {
        /* After a v0 handshake the client sends raw SASL tokens without Kafka headers:
         * nothing more to parse here. */
        if (e) st_conn_emit(conn, e);
        st_conn_switch(conn, ST_PROTO_TCP, NULL, 0, NULL, 0, now_us);
        return -1;
    }
    if (s->ninflight == KAFKA_INFLIGHT_MAX) {
        if (s->inflight[0].entry != NULL) st_conn_count_unanswered(conn, ST_LIMIT_PENDING, 1);
        emit_request(conn, &s->inflight[0], "no response (too many requests in flight)", now_us);
        inflight_remove(s, 0);
    }
    struct kafka_request *q = &s->inflight[s->ninflight++];
    q->correlation_id = corr;
    q->api_key = (int16_t)api;
    q->api_version = (int16_t)version;
    q->entry = e;
    q->section = sec;
    return 0;
}

static int on_response(struct kafka_state *s, struct st_conn *conn, const uint8_t *d, size_t len,
                       uint32_t frame_len, uint64_t now_us)
{
    struct kr r = {d, len, false, false};
    int32_t corr = (int32_t)kr_int(&r, 4);
    if (r.bad) {
        st_conn_fail(conn, "Kafka: response shorter than its correlation id");
        return -1;
    }
    size_t i = 0;
    while (i < s->ninflight && s->inflight[i].correlation_id != corr) i++;
    if (i == s->ninflight) {
        s->unmatched_responses++;
        struct st_entry *e = st_conn_entry_new(conn, ST_PROTO_KAFKA);
        if (e) {
            e->start_us = e->end_us = now_us;
            e->response.present = true;
            e->response.wire_bytes = (uint64_t)frame_len + 4;
            e->section = json_pack("{s:i}", "correlationId", corr);
            st_entry_set_error(e, "response to an unknown correlation id %d", corr);
            st_entry_set_summary(e, "Kafka response without a request");
            st_conn_emit(conn, e);
        }
        return 0;
    }
    struct kafka_request *q = &s->inflight[i];
    int api = q->api_key, v = q->api_version;
    if (q->entry == NULL) { /* no entry was made for the request: skip the response */
        inflight_remove(s, i);
        return 0;
    }
    r.flex = is_flexible(api, v) && api != API_API_VERSIONS; /* KIP-511: ApiVersions uses header v0 */
    kr_skip_tags(&r);
    r.flex = is_flexible(api, v);

    struct st_entry *e = q->entry;
    json_t *sec = q->section;
    struct topics t;
    topics_init(&t, sec);
    bool had_topics = json_object_get(sec, "topic") != NULL;
    switch (api) {
    case API_PRODUCE: response_produce(&r, v, &t); break;
    case API_FETCH: response_fetch(&r, v, &t); break;
    case API_METADATA: response_metadata(&r, v, &t, !had_topics); break;
    case API_LIST_OFFSETS: response_list_offsets(&r, v, &t); break;
    case API_OFFSET_COMMIT: response_offset_commit(&r, v, &t); break;
    case API_OFFSET_FETCH: response_offset_fetch(&r, v, &t); break;
    default: response_simple(&r, api, v, &t); break;
    }
    if (!had_topics && json_object_get(sec, "topic")) summarize(e, sec);
    if (e) {
        char buf[24];
        const char *ename = error_name(t.first_error, buf, sizeof(buf));
        e->end_us = now_us > e->start_us ? now_us : e->start_us;
        e->response.present = true;
        e->response.wire_bytes = (uint64_t)frame_len + 4;
        e->response.status_text = st_arena_strdup(&e->arena, ename);
        json_object_set_new(sec, "errorCode", json_integer(t.first_error));
        json_object_set_new(sec, "errorName", json_string(ename));
        if (t.first_error != 0) st_entry_set_error(e, "%s", ename);
    }
    emit_request(conn, q, NULL, now_us);
    inflight_remove(s, i);
    if (api == API_SASL_HANDSHAKE && v == 0) {
        st_conn_switch(conn, ST_PROTO_TCP, NULL, 0, NULL, 0, now_us);
        return -1;
    }
    return 0;
}

/* --- module --- */

static void *kafka_create(struct st_conn *conn)
{
    struct kafka_state *s = calloc(1, sizeof(*s));
    if (s != NULL) s->conn = conn;
    return s;
}

static int kafka_feed(void *state, struct st_conn *conn, enum st_dir dir, const uint8_t *data,
                      size_t len, uint64_t now_us)
{
    struct kafka_state *s = state;
    struct kafka_dir *d = &s->dir[dir];
    while (len > 0) {
        if (d->size_len < 4) {
            if (d->size_len == 0) d->start_us = now_us;
            size_t n = 4 - d->size_len < len ? 4 - d->size_len : len;
            memcpy(d->size_buf + d->size_len, data, n);
            d->size_len += n, data += n, len -= n;
            if (d->size_len < 4) break;
            d->frame_len = (uint32_t)d->size_buf[0] << 24 | (uint32_t)d->size_buf[1] << 16 |
                           (uint32_t)d->size_buf[2] << 8 | d->size_buf[3];
            uint32_t min = dir == ST_DIR_TO_SERVER ? 8 : 4;
            if (d->frame_len < min || d->frame_len > KAFKA_FRAME_MAX) {
                st_conn_fail(conn, "Kafka: %s frame size %u out of range", dir == ST_DIR_TO_SERVER ? "request" : "response",
                             d->frame_len);
                return -1;
            }
            d->frame_seen = 0;
            d->head_len = 0;
            size_t want = d->frame_len < KAFKA_HEAD_MAX ? d->frame_len : KAFKA_HEAD_MAX;
            if (d->head_cap < want) {
                if (st_conn_mem_charge(conn, want - d->head_cap) < 0) {
                    st_conn_fail(conn, "Kafka: frame head over the connection's memory budget");
                    return -1;
                }
                uint8_t *nb = realloc(d->head, want);
                if (nb == NULL) {
                    st_conn_mem_refund(conn, want - d->head_cap);
                    st_conn_fail(conn, "out of memory");
                    return -1;
                }
                d->head = nb;
                d->head_cap = want;
            }
            continue;
        }
        size_t n = d->frame_len - d->frame_seen < len ? d->frame_len - d->frame_seen : len;
        size_t keep = d->head_cap - d->head_len < n ? d->head_cap - d->head_len : n;
        if (d->head_len < d->frame_len && keep > 0) {
            memcpy(d->head + d->head_len, data, keep);
            d->head_len += keep;
        }
        d->frame_seen += (uint32_t)n, data += n, len -= n;
        if (d->frame_seen < d->frame_len) continue;
        d->size_len = 0;
        int rc = dir == ST_DIR_TO_SERVER
                     ? on_request(s, conn, d->head, d->head_len, d->frame_len, d->start_us, now_us)
                     : on_response(s, conn, d->head, d->head_len, d->frame_len, now_us);
        if (rc < 0) return -1; /* the module may be gone: do not touch the state */
    }
    return 0;
}

static void kafka_close(void *state, struct st_conn *conn, enum st_close_reason reason,
                        uint64_t now_us)
{
    struct kafka_state *s = state;
    const char *error = reason == ST_CLOSE_RESET ? "no response (connection reset)" : "no response";
    for (size_t i = 0; i < s->ninflight; i++) emit_request(conn, &s->inflight[i], error, now_us);
    s->ninflight = 0;
}

static void kafka_destroy(void *state)
{
    struct kafka_state *s = state;
    if (s == NULL) return;
    /* Requests left here (close() emits them all) were waiting when parsing stopped. */
    for (size_t i = 0; i < s->ninflight; i++) {
        if (s->inflight[i].entry != NULL) st_conn_count_dropped(s->conn, ST_LIMIT_PARSE_STOPPED, 1);
        request_free(&s->inflight[i]);
    }
    free(s->dir[0].head);
    free(s->dir[1].head);
    free(s);
}

const struct st_proto_ops st_kafka_ops = {
    .proto = ST_PROTO_KAFKA,
    .create = kafka_create,
    .feed = kafka_feed,
    .close = kafka_close,
    .destroy = kafka_destroy,
};
