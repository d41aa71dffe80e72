"""nginx as the HTTP server of a harness pod (integration tests, the proxy benchmark).

The process-wide part of the config is the same everywhere: one worker running as root in
the foreground, its pid and temp files under the node's directory (one set per pod, so
several nginx can share the node). Callers give only what goes inside http { } after it.
"""
import os


def start_nginx(pod, http, *, error_log="crit", worker_connections=8192, rlimit_nofile=None,
                nofile=None):
    """Writes <node.dir>/<pod>.nginx.conf with `http` (the directives inside http { },
    after `access_log off` and the temp paths: usually a server block), starts nginx in
    the pod (`nofile`: its open-file limit) and waits until it accepts on port 80.
    Returns the Proc."""
    d, pod_name = pod.node.dir, pod.name
    path = os.path.join(d, pod_name + ".nginx.conf")
    rlimit = "worker_rlimit_nofile %d;\n" % rlimit_nofile if rlimit_nofile else ""
    temp = "".join("    %s_temp_path %s/%s.%s;\n" % (kind, d, pod_name, suffix)
                   for kind, suffix in (("client_body", "body"), ("proxy", "proxy"),
                                        ("fastcgi", "fastcgi"), ("uwsgi", "uwsgi"),
                                        ("scgi", "scgi")))
    with open(path, "w") as f:
        f.write("worker_processes 1;\n%suser root;\ndaemon off;\npid %s/%s.nginx.pid;\n"
                "error_log stderr %s;\nevents { worker_connections %d; }\n"
                "http {\n    access_log off;\n%s%s}\n"
                % (rlimit, d, pod_name, error_log, worker_connections, temp, http))
    proc = pod.spawn(["nginx", "-c", path], name="nginx", nofile=nofile)
    pod.wait_port(80, proc=proc)
    return proc
