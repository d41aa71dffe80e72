"""sidetap's node harness: network-namespace "pods" on a bridge, injection of
sidetap-init + sidetap-proxy as the webhook would do it, cluster DNS, a collector sink and
host port-forwarding. See README.md."""
from .node import (ADMIN_PORT, DNS_PORT, INBOUND_PORT, OUTBOUND_PORT, PROXY_GID, PROXY_UID,
                   Collector, HarnessError, Node, Pod, Proc, reap_stale)
from .nginx import start_nginx
from . import netns

__all__ = ["Node", "Pod", "Proc", "Collector", "HarnessError", "reap_stale", "netns", "start_nginx",
           "PROXY_UID", "PROXY_GID", "OUTBOUND_PORT", "INBOUND_PORT", "DNS_PORT", "ADMIN_PORT"]
