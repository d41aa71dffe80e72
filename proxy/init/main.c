/* sidetap-init: the init container that makes a pod's traffic go through sidetap-proxy.
 * It parses the configuration, builds the restore input (rules.c) and applies it with
 * iptables-restore --noflush (backend.c), once for IPv4 and, when the pod has IPv6, once
 * for IPv6. Exit status: 0 done, 1 applying failed, 2 bad input (nothing written). */
#include "backend.h"
#include "config.h"
#include "rules.h"

#include <stdio.h>
#include <stdlib.h>

static void warn_ignored_ipv6(const struct st_init_config *cfg)
{
    char net[80];
    for (size_t i = 0; i < cfg->n_exclude_cidrs; i++)
        if (cfg->exclude_cidrs[i].family == 6)
            fprintf(stderr, "sidetap-init: warning: IPv6 rules are off; ignoring excluded CIDR %s\n",
                    st_init_net_str(&cfg->exclude_cidrs[i], net, sizeof net));
    for (size_t i = 0; cfg->dns && i < cfg->n_nameservers; i++)
        if (cfg->nameservers[i].family == 6)
            fprintf(stderr, "sidetap-init: warning: IPv6 rules are off; DNS to %s is not captured\n",
                    st_init_net_str(&cfg->nameservers[i], net, sizeof net));
}

static int dry_run(const struct st_init_config *cfg, int ipv6)
{
    for (int family = 4; family <= 6; family += 2) {
        if (family == 6 && !ipv6)
            break;
        char *text = st_rules_apply_text(cfg, family, NULL, NULL);
        if (text == NULL) {
            fprintf(stderr, "sidetap-init: out of memory\n");
            return 1;
        }
        printf("# %s --noflush\n%s", family == 4 ? "iptables-restore" : "ip6tables-restore",
               text);
        free(text);
    }
    return 0;
}

/* Applies (or cleans) one family's nat table; returns the number of rules or changes,
 * or -1 on failure (printed). */
static int apply_family(const struct st_init_config *cfg, const char *save_prog,
                        const char *restore_prog, int family)
{
    char *existing = st_backend_save(save_prog);
    if (existing == NULL)
        return -1;
    int n = 0;
    char *text = cfg->clean ? st_rules_clean_text(existing, &n)
                            : st_rules_apply_text(cfg, family, existing, &n);
    free(existing);
    if (text == NULL) {
        fprintf(stderr, "sidetap-init: out of memory\n");
        return -1;
    }
    int rc = 0;
    if (!(cfg->clean && n == 0))
        rc = st_backend_restore(restore_prog, text);
    free(text);
    return rc < 0 ? -1 : n;
}

int main(int argc, char **argv)
{
    static struct st_init_config cfg; /* large: keep it off the stack */
    int rc = st_init_config_parse(&cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (cfg.dns && !cfg.clean && st_init_config_read_resolv(&cfg) < 0)
        return 2;

    int ipv6 = cfg.ipv6 == ST_INIT_IPV6_ON ||
               (cfg.ipv6 == ST_INIT_IPV6_AUTO && st_backend_has_ipv6());
    if (!ipv6 && !cfg.clean)
        warn_ignored_ipv6(&cfg);
    if (cfg.dry_run)
        return dry_run(&cfg, ipv6);

    struct st_backend b;
    if (st_backend_pick(cfg.backend, &b) < 0)
        return 1;

    int n4 = apply_family(&cfg, b.save4, b.restore4, 4);
    if (n4 < 0)
        return 1;
    int n6 = 0;
    if (cfg.clean) {
        /* Clean IPv6 whenever the tools exist: the rules may predate an address change. */
        if (b.save6[0] && (n6 = apply_family(&cfg, b.save6, b.restore6, 6)) < 0)
            return 1;
    } else if (ipv6) {
        if (b.save6[0] == '\0') {
            fprintf(stderr, "sidetap-init: the pod has IPv6 but ip6tables-%s-restore is missing; "
                            "IPv4 rules are in place (use --ipv6=off to skip IPv6)\n",
                    b.name);
            return 1;
        }
        if ((n6 = apply_family(&cfg, b.save6, b.restore6, 6)) < 0)
            return 1;
    }
    if (!cfg.quiet) {
        if (cfg.clean)
            fprintf(stderr, "sidetap-init: removed %d IPv4 and %d IPv6 rules/chains (%s)\n", n4,
                    n6, b.name);
        else if (ipv6)
            fprintf(stderr, "sidetap-init: applied %d IPv4 and %d IPv6 rules (%s)\n", n4, n6,
                    b.name);
        else
            fprintf(stderr, "sidetap-init: applied %d IPv4 rules (%s)\n", n4, b.name);
    }
    return 0;
}
