/* kfl_int.h - what the KFL lexer, parser and evaluator share; not part of kfl.h. */
#ifndef SIDETAP_COLLECTOR_KFL_INT_H
#define SIDETAP_COLLECTOR_KFL_INT_H

#include <regex.h>
#include <stddef.h>

#include "kfl.h"

enum kfl_tok_kind {
    KT_END,
    KT_IDENT,
    KT_STRING,
    KT_NUMBER,
    KT_DOT,
    KT_COMMA,
    KT_LPAREN,
    KT_RPAREN,
    KT_LBRACK,
    KT_RBRACK,
    KT_EQ,     /* == */
    KT_NE,     /* != */
    KT_LT,
    KT_LE,
    KT_GT,
    KT_GE,
    KT_MATCH,  /* =~ */
    KT_NOT,    /* ! */
    KT_AND,    /* && */
    KT_OR,     /* || */
    KT_PLUS,
    KT_MINUS,
    KT_ERROR,  /* lexer error: message in kfl_lexer.err */
};

struct kfl_token {
    enum kfl_tok_kind kind;
    int pos, len;    /* in the query text */
    char *text;      /* IDENT, STRING (unescaped): owned by the lexer until taken */
    size_t text_len;
    double number;   /* NUMBER; durations are converted to ms */
    int is_duration;
};

struct kfl_lexer {
    const char *src;
    int pos;
    struct kfl_token tok; /* current token */
    struct kfl_error *err;
};

/* Reads the next token into lx->tok (freeing the previous one's text). Returns -1 on
 * a lexical error (err filled). */
int kfl_lex_next(struct kfl_lexer *lx);
void kfl_lex_free(struct kfl_lexer *lx);
const char *kfl_tok_describe(const struct kfl_token *t, char *buf, size_t size);
void kfl_set_error(struct kfl_error *err, int pos, int len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fields of the index record, resolved at compile time. */
enum kfl_fast {
    KF_NONE = 0,
    KF_ID,
    KF_TIMESTAMP,
    KF_ELAPSED,
    KF_PROTO_NAME,
    KF_SRC_IP,
    KF_SRC_NAME,
    KF_SRC_NS,
    KF_SRC_WORKLOAD,
    KF_SRC_NODE,
    KF_SRC_PORT,
    KF_DST_IP,
    KF_DST_NAME,
    KF_DST_NS,
    KF_DST_WORKLOAD,
    KF_DST_NODE,
    KF_DST_PORT,
    KF_NODE_NAME,
    KF_OUTGOING,
    KF_METHOD,
    KF_PATH,
    KF_STATUS,
    KF_SUMMARY,
    KF_ERROR,
};

enum kfl_node_kind {
    KN_LITERAL,
    KN_FIELD,
    KN_PROTO,     /* bare protocol name: u.proto_mask */
    KN_NOW,
    KN_AND,
    KN_OR,
    KN_NOT,
    KN_CMP,       /* op in u.op */
    KN_ADD,
    KN_SUB,
    KN_STARTS,
    KN_ENDS,
    KN_CONTAINS,
    KN_REGEX,
};

enum kfl_lit_type { KL_NULL, KL_BOOL, KL_NUM, KL_STR };

struct kfl_seg {
    char *name; /* object key; NULL for an array index */
    long index;
};

struct kfl_node {
    enum kfl_node_kind kind;
    int pos, len;
    struct kfl_node *a, *b;
    /* KN_LITERAL */
    enum kfl_lit_type lit;
    double num;
    bool boolean;
    char *str;
    size_t str_len;
    /* KN_FIELD */
    enum kfl_fast fast;
    struct kfl_seg *segs;
    int nsegs;
    /* KN_PROTO */
    unsigned proto_mask;
    char *proto_other; /* a protocol name not in enum st_rproto */
    /* KN_CMP */
    enum kfl_tok_kind op;
    /* KN_REGEX */
    regex_t re;
    bool re_ok;
    /* KN_CMP on an interned field: the literal's atom, cached per atom-table epoch */
    bool atom_valid;
    uint32_t atom;
    uint64_t atom_epoch;
};

struct kfl_query {
    struct kfl_node *root; /* NULL: match all */
    bool needs_json;
};

void kfl_node_free(struct kfl_node *n);

#endif
