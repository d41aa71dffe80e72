/* sidetap-init rule text. The rules are written in the canonical form iptables-save
 * prints (-d/-o before -p, explicit -m tcp/-m udp), so a save of the applied table shows
 * the same lines as --dry-run. docs/iptables.md explains every rule. */
#include "rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* iptables' multiport match takes at most 15 ports per rule. */
#define MULTIPORT_MAX 15

static const char *const builtin_chains[] = {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"};
static const char *const own_chains[] = {ST_CHAIN_INBOUND, ST_CHAIN_IN_REDIRECT, ST_CHAIN_OUTPUT,
                                         ST_CHAIN_REDIRECT, ST_CHAIN_DNS};

static const char jump_prerouting[] = "-A PREROUTING -p tcp -j " ST_CHAIN_INBOUND;
static const char jump_output[] = "-A OUTPUT -j " ST_CHAIN_OUTPUT;

/* Emits one rule per chunk of up to 15 ports: `-A chain -p tcp <ports> -j target`. */
static int put_port_rules(FILE *out, const char *chain, const struct st_init_port_list *list,
                          const char *target)
{
    int n = 0;
    for (size_t i = 0; i < list->n; i += MULTIPORT_MAX) {
        size_t end = i + MULTIPORT_MAX < list->n ? i + MULTIPORT_MAX : list->n;
        if (end - i == 1) {
            fprintf(out, "-A %s -p tcp -m tcp --dport %u -j %s\n", chain, list->ports[i], target);
        } else {
            fprintf(out, "-A %s -p tcp -m multiport --dports ", chain);
            for (size_t j = i; j < end; j++)
                fprintf(out, "%s%u", j == i ? "" : ",", list->ports[j]);
            fprintf(out, " -j %s\n", target);
        }
        n++;
    }
    return n;
}

/* True when `line` is a rule in a built-in chain that jumps (or goes) to a SIDETAP_ chain. */
static int is_builtin_jump(const char *line)
{
    if (strncmp(line, "-A ", 3) != 0)
        return 0;
    int builtin = 0;
    for (size_t i = 0; i < sizeof builtin_chains / sizeof builtin_chains[0]; i++) {
        size_t n = strlen(builtin_chains[i]);
        if (strncmp(line + 3, builtin_chains[i], n) == 0 && line[3 + n] == ' ')
            builtin = 1;
    }
    return builtin && (strstr(line, " -j SIDETAP_") || strstr(line, " -g SIDETAP_"));
}

/* Calls fn for each line of text (without the newline; the buffer is modifiable). */
static void each_line(const char *text, void (*fn)(char *line, void *arg), void *arg)
{
    if (text == NULL)
        return;
    char *copy = strdup(text);
    if (copy == NULL)
        return;
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' '))
            line[--n] = '\0';
        fn(line, arg);
    }
    free(copy);
}

struct jump_scan {
    FILE *out;
    int have_prerouting, have_output;
    int n_deleted;
};

/* Keeps the first exact copy of each of our two jumps, deletes every other jump. */
static void scan_jump(char *line, void *arg)
{
    struct jump_scan *s = arg;
    if (!is_builtin_jump(line))
        return;
    if (strcmp(line, jump_prerouting) == 0 && !s->have_prerouting) {
        s->have_prerouting = 1;
        return;
    }
    if (strcmp(line, jump_output) == 0 && !s->have_output) {
        s->have_output = 1;
        return;
    }
    fprintf(s->out, "-D%s\n", line + 2);
    s->n_deleted++;
}

/* Closes the memory stream; only then is *buf final. */
static char *finish(FILE *out, char **buf)
{
    if (fclose(out) != 0) {
        free(*buf);
        return NULL;
    }
    return *buf;
}

char *st_rules_apply_text(const struct st_init_config *cfg, int family, const char *existing,
                          int *n_rules)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (out == NULL)
        return NULL;
    int n = 0;
    char net[80];

    fputs("*nat\n", out);
    for (size_t i = 0; i < sizeof own_chains / sizeof own_chains[0]; i++)
        fprintf(out, ":%s - [0:0]\n", own_chains[i]);

    struct jump_scan scan = {.out = out};
    each_line(existing, scan_jump, &scan);

    /* The two redirect targets. */
    fprintf(out, "-A %s -p tcp -j REDIRECT --to-ports %u\n", ST_CHAIN_IN_REDIRECT,
            cfg->inbound_port);
    fprintf(out, "-A %s -p tcp -j REDIRECT --to-ports %u\n", ST_CHAIN_REDIRECT,
            cfg->outbound_port);
    n += 2;

    /* Inbound: TCP arriving from outside the pod (PREROUTING never sees connections made
     * over lo inside the pod: their NAT was decided in OUTPUT). */
    if (cfg->inbound_all || cfg->include_inbound.n > 0) {
        fprintf(out, "-A %s -p tcp -m tcp --dport %u -j RETURN\n", ST_CHAIN_INBOUND,
                cfg->admin_port);
        n++;
        n += put_port_rules(out, ST_CHAIN_INBOUND, &cfg->exclude_inbound, "RETURN");
        if (cfg->inbound_all) {
            fprintf(out, "-A %s -p tcp -j %s\n", ST_CHAIN_INBOUND, ST_CHAIN_IN_REDIRECT);
            n++;
        } else {
            n += put_port_rules(out, ST_CHAIN_INBOUND, &cfg->include_inbound,
                                ST_CHAIN_IN_REDIRECT);
        }
    }

    /* Outbound: everything the pod's processes send, except the proxy's own traffic. */
    fprintf(out, "-A %s -m owner --uid-owner %u -j RETURN\n", ST_CHAIN_OUTPUT, cfg->proxy_uid);
    fprintf(out, "-A %s -m owner --gid-owner %u -j RETURN\n", ST_CHAIN_OUTPUT, cfg->proxy_gid);
    n += 2;
    for (size_t i = 0; i < cfg->n_exclude_cidrs; i++) {
        if (cfg->exclude_cidrs[i].family != family)
            continue;
        fprintf(out, "-A %s -d %s -j RETURN\n", ST_CHAIN_OUTPUT,
                st_init_net_str(&cfg->exclude_cidrs[i], net, sizeof net));
        n++;
    }
    int n_dns = 0;
    for (size_t i = 0; cfg->dns && i < cfg->n_nameservers; i++)
        n_dns += cfg->nameservers[i].family == family;
    if (n_dns > 0) {
        fprintf(out, "-A %s -j %s\n", ST_CHAIN_OUTPUT, ST_CHAIN_DNS);
        n++;
    }
    fprintf(out, "-A %s -o lo -j RETURN\n", ST_CHAIN_OUTPUT);
    n++;
    n += put_port_rules(out, ST_CHAIN_OUTPUT, &cfg->exclude_outbound, "RETURN");
    fprintf(out, "-A %s -p tcp -j %s\n", ST_CHAIN_OUTPUT, ST_CHAIN_REDIRECT);
    n++;

    /* DNS to the pod's nameservers, UDP and TCP, to the proxy's DNS listener. */
    for (size_t i = 0; n_dns > 0 && i < cfg->n_nameservers; i++) {
        if (cfg->nameservers[i].family != family)
            continue;
        st_init_net_str(&cfg->nameservers[i], net, sizeof net);
        fprintf(out, "-A %s -d %s -p udp -m udp --dport 53 -j REDIRECT --to-ports %u\n",
                ST_CHAIN_DNS, net, cfg->dns_port);
        fprintf(out, "-A %s -d %s -p tcp -m tcp --dport 53 -j REDIRECT --to-ports %u\n",
                ST_CHAIN_DNS, net, cfg->dns_port);
        n += 2;
    }

    if (!scan.have_prerouting)
        fprintf(out, "%s\n", jump_prerouting);
    if (!scan.have_output)
        fprintf(out, "%s\n", jump_output);
    n += 2;
    fputs("COMMIT\n", out);
    if (n_rules)
        *n_rules = n;
    return finish(out, &buf);
}

struct clean_scan {
    FILE *out;
    char chains[32][64];
    int n_chains;
    int n_changes;
};

static void scan_clean_jump(char *line, void *arg)
{
    struct clean_scan *s = arg;
    if (is_builtin_jump(line)) {
        fprintf(s->out, "-D%s\n", line + 2);
        s->n_changes++;
    }
}

static void scan_clean_chain(char *line, void *arg)
{
    struct clean_scan *s = arg;
    if (strncmp(line, ":SIDETAP_", 9) != 0 || s->n_chains == 32)
        return;
    size_t n = strcspn(line + 1, " ");
    if (n >= sizeof s->chains[0])
        return;
    memcpy(s->chains[s->n_chains], line + 1, n);
    s->chains[s->n_chains][n] = '\0';
    s->n_chains++;
}

char *st_rules_clean_text(const char *existing, int *n_changes)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (out == NULL)
        return NULL;
    struct clean_scan s = {.out = out};
    fputs("*nat\n", out);
    each_line(existing, scan_clean_jump, &s);
    each_line(existing, scan_clean_chain, &s);
    /* Flush all before deleting any: our chains jump to each other. */
    for (int i = 0; i < s.n_chains; i++)
        fprintf(out, "-F %s\n", s.chains[i]);
    for (int i = 0; i < s.n_chains; i++)
        fprintf(out, "-X %s\n", s.chains[i]);
    s.n_changes += s.n_chains;
    fputs("COMMIT\n", out);
    *n_changes = s.n_changes;
    return finish(out, &buf);
}
