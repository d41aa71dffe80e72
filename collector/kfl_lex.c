/* kfl_lex.c - splits a KFL query into tokens. Strings are unescaped here, numbers with a
 * unit (5m, 300ms) become milliseconds. Every error carries its position. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfl_int.h"

void kfl_set_error(struct kfl_error *err, int pos, int len, const char *fmt, ...)
{
    if (!err)
        return;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    err->position = pos < 0 ? 0 : pos;
    err->length = len < 1 ? 1 : len;
    snprintf(err->message, sizeof(err->message), "%s at position %d", msg, err->position);
}

static int is_ident_start(int c)
{
    return isalpha(c) || c == '_' || c == '$';
}

static int is_ident_char(int c)
{
    return isalnum(c) || c == '_' || c == '$';
}

static int lex_string(struct kfl_lexer *lx)
{
    const char *s = lx->src;
    int start = lx->pos;
    char quote = s[start];
    size_t cap = 16, n = 0;
    char *out = malloc(cap);
    if (!out)
        goto oom;
    int i = start + 1;
    for (;;) {
        char c = s[i];
        if (c == '\0') {
            kfl_set_error(lx->err, start, i - start, "unterminated string (missing closing %c)",
                          quote);
            free(out);
            return -1;
        }
        if (c == quote) {
            i++;
            break;
        }
        if (c == '\\') {
            char e = s[i + 1];
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case '\\': case '"': case '\'': case '/': c = e; break;
            case '.': case '*': case '+': case '?': case '(': case ')': case '[': case ']':
            case '{': case '}': case '^': case '$': case '|': case 'd': case 'w': case 's':
                /* regular-expression escapes pass through unchanged */
                if (n + 2 >= cap) {
                    char *p = realloc(out, cap *= 2);
                    if (!p)
                        goto oom;
                    out = p;
                }
                out[n++] = '\\';
                c = e;
                break;
            default:
                kfl_set_error(lx->err, i, 2, "unknown escape '\\%c' in string",
                              e ? e : ' ');
                free(out);
                return -1;
            }
            i += 2;
        } else {
            i++;
        }
        if (n + 2 >= cap) {
            char *p = realloc(out, cap *= 2);
            if (!p)
                goto oom;
            out = p;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    lx->tok.kind = KT_STRING;
    lx->tok.text = out;
    lx->tok.text_len = n;
    lx->tok.len = i - start;
    lx->pos = i;
    return 0;
oom:
    free(out);
    kfl_set_error(lx->err, start, 1, "out of memory");
    return -1;
}

static int lex_number(struct kfl_lexer *lx)
{
    const char *s = lx->src;
    int start = lx->pos;
    char *end;
    double v = strtod(s + start, &end);
    int i = (int)(end - s);
    if (i == start) {
        kfl_set_error(lx->err, start, 1, "malformed number");
        return -1;
    }
    /* strtod accepts "inf", "nan" and hex; the lexer only calls it on a digit or '.',
     * but hex ("0x10") is refused to keep numbers decimal */
    for (int k = start; k < i; k++)
        if (s[k] == 'x' || s[k] == 'X') {
            kfl_set_error(lx->err, start, i - start, "hexadecimal numbers are not supported");
            return -1;
        }
    lx->tok.is_duration = 0;
    if (isalpha((unsigned char)s[i])) {
        int u = i;
        while (isalpha((unsigned char)s[u]))
            u++;
        int ulen = u - i;
        double mult = 0;
        if (ulen == 2 && strncmp(s + i, "ms", 2) == 0)
            mult = 1;
        else if (ulen == 1 && s[i] == 's')
            mult = 1000;
        else if (ulen == 1 && s[i] == 'm')
            mult = 60000;
        else if (ulen == 1 && s[i] == 'h')
            mult = 3600000;
        else if (ulen == 1 && s[i] == 'd')
            mult = 86400000;
        if (mult == 0 || isdigit((unsigned char)s[u]) || s[u] == '_') {
            kfl_set_error(lx->err, i, ulen, "unknown unit '%.*s' after a number (use ms, s, m, h or d)",
                          ulen > 20 ? 20 : ulen, s + i);
            return -1;
        }
        v *= mult;
        lx->tok.is_duration = 1;
        i = u;
    }
    lx->tok.kind = KT_NUMBER;
    lx->tok.number = v;
    lx->tok.len = i - start;
    lx->pos = i;
    return 0;
}

int kfl_lex_next(struct kfl_lexer *lx)
{
    free(lx->tok.text);
    memset(&lx->tok, 0, sizeof(lx->tok));
    const char *s = lx->src;
    while (s[lx->pos] == ' ' || s[lx->pos] == '\t' || s[lx->pos] == '\n' || s[lx->pos] == '\r')
        lx->pos++;
    int p = lx->pos;
    char c = s[p], d = c ? s[p + 1] : '\0';
    lx->tok.pos = p;
    lx->tok.len = 1;
    if (c == '\0') {
        lx->tok.kind = KT_END;
        return 0;
    }
    if (c == '"' || c == '\'')
        return lex_string(lx);
    if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)d)))
        return lex_number(lx);
    if (is_ident_start((unsigned char)c)) {
        int i = p + 1;
        while (is_ident_char((unsigned char)s[i]))
            i++;
        lx->tok.kind = KT_IDENT;
        lx->tok.text = strndup(s + p, (size_t)(i - p));
        if (!lx->tok.text) {
            kfl_set_error(lx->err, p, 1, "out of memory");
            lx->tok.kind = KT_ERROR;
            return -1;
        }
        lx->tok.text_len = (size_t)(i - p);
        lx->tok.len = i - p;
        lx->pos = i;
        return 0;
    }
    int two = 1;
    switch (c) {
    case '.': lx->tok.kind = KT_DOT; break;
    case ',': lx->tok.kind = KT_COMMA; break;
    case '(': lx->tok.kind = KT_LPAREN; break;
    case ')': lx->tok.kind = KT_RPAREN; break;
    case '[': lx->tok.kind = KT_LBRACK; break;
    case ']': lx->tok.kind = KT_RBRACK; break;
    case '+': lx->tok.kind = KT_PLUS; break;
    case '-': lx->tok.kind = KT_MINUS; break;
    case '=':
        if (d == '=')
            lx->tok.kind = KT_EQ, two = 2;
        else if (d == '~')
            lx->tok.kind = KT_MATCH, two = 2;
        else {
            kfl_set_error(lx->err, p, 1, "'=' is not an operator: use '==' to compare");
            lx->tok.kind = KT_ERROR;
            return -1;
        }
        break;
    case '!':
        if (d == '=')
            lx->tok.kind = KT_NE, two = 2;
        else
            lx->tok.kind = KT_NOT;
        break;
    case '<':
        if (d == '=')
            lx->tok.kind = KT_LE, two = 2;
        else
            lx->tok.kind = KT_LT;
        break;
    case '>':
        if (d == '=')
            lx->tok.kind = KT_GE, two = 2;
        else
            lx->tok.kind = KT_GT;
        break;
    case '&':
        if (d == '&') {
            lx->tok.kind = KT_AND, two = 2;
            break;
        }
        kfl_set_error(lx->err, p, 1, "'&' is not an operator: use 'and' (or '&&')");
        lx->tok.kind = KT_ERROR;
        return -1;
    case '|':
        if (d == '|') {
            lx->tok.kind = KT_OR, two = 2;
            break;
        }
        kfl_set_error(lx->err, p, 1, "'|' is not an operator: use 'or' (or '||')");
        lx->tok.kind = KT_ERROR;
        return -1;
    default:
        if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
            kfl_set_error(lx->err, p, 1, "unexpected character '%c'", c);
        else
            kfl_set_error(lx->err, p, 1, "unexpected character (byte 0x%02x)", (unsigned char)c);
        lx->tok.kind = KT_ERROR;
        return -1;
    }
    lx->tok.len = two;
    lx->pos = p + two;
    return 0;
}

void kfl_lex_free(struct kfl_lexer *lx)
{
    free(lx->tok.text);
    lx->tok.text = NULL;
}

const char *kfl_tok_describe(const struct kfl_token *t, char *buf, size_t size)
{
    switch (t->kind) {
    case KT_END: return "the end of the query";
    case KT_IDENT: snprintf(buf, size, "'%.40s'", t->text); return buf;
    case KT_STRING: snprintf(buf, size, "string \"%.40s\"", t->text); return buf;
    case KT_NUMBER: return "a number";
    case KT_DOT: return "'.'";
    case KT_COMMA: return "','";
    case KT_LPAREN: return "'('";
    case KT_RPAREN: return "')'";
    case KT_LBRACK: return "'['";
    case KT_RBRACK: return "']'";
    case KT_EQ: return "'=='";
    case KT_NE: return "'!='";
    case KT_LT: return "'<'";
    case KT_LE: return "'<='";
    case KT_GT: return "'>'";
    case KT_GE: return "'>='";
    case KT_MATCH: return "'=~'";
    case KT_NOT: return "'!'";
    case KT_AND: return "'&&'";
    case KT_OR: return "'||'";
    case KT_PLUS: return "'+'";
    case KT_MINUS: return "'-'";
    case KT_ERROR: return "an invalid token";
    }
    return "?";
}
