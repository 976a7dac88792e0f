/* kd/check.h: checks of operator input at start, shared by every component's main (and the
 * wire-format validator for names): Kubernetes names (DNS-1123), quantities, host:port and IP
 * literals, and whether a listening address can be bound. Each kd_check_* names the option in
 * its message ("--namespace: \"Foo\" is not a DNS-1123 label: has a character outside
 * [a-z0-9-]"), so a main can print it as it is and exit 2. Pure except kd_listen_probe. */
#ifndef KD_CHECK_H
#define KD_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/common.h"
#include "kd/error.h"

/* DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, 1..63 characters (namespaces, Service names).
 * NULL when s[0..len) is one, else why not (static text, "is empty", ...). */
KD_API const char *kd_dns_label_why(const char *s, size_t len);

/* DNS-1123 subdomain: DNS-1123 labels joined by '.', 1..253 characters (most object names,
 * Node names). NULL when s[0..len) is one, else why not (static text). */
KD_API const char *kd_dns_subdomain_why(const char *s, size_t len);

/* `what` (e.g. "--namespace") must be a DNS-1123 label / subdomain. 0 or -EINVAL with *err. */
KD_API int kd_check_dns_label(const char *what, const char *value, struct kd_error **err);
KD_API int kd_check_dns_subdomain(const char *what, const char *value, struct kd_error **err);

/* `what` must be a Kubernetes quantity (kd/quantity.h: "500m", "2", "128Gi"; not negative).
 * milli: parse as thousandths (cpu). *out (may be NULL) set only on success. 0 or -EINVAL /
 * -ERANGE with *err. */
KD_API int kd_check_quantity(const char *what, const char *value, bool milli, int64_t *out,
                             struct kd_error **err);

/* Parses "host:port" / "[v6]:port" (host: an IP literal or a DNS name of [A-Za-z0-9.-]; port
 * 1..65535). `what` names the value in messages ("channel address", "--status-addr"). With
 * host non-NULL, *host is owned (free); host and port may be NULL to only check. Set only on
 * success. 0 or -EINVAL with *err quoting the input. */
KD_API int kd_hostport_parse(const char *what, const char *value, char **host, int *port,
                             struct kd_error **err);

/* `what` must be an IP literal: IPv4 only (v4_only: what libwebsockets listens on here) or
 * IPv4/IPv6. 0 or -EINVAL with *err. */
KD_API int kd_check_ip(const char *what, const char *value, bool v4_only, struct kd_error **err);

/* The channels' bearer token (--chan-token / $KD_CHAN_TOKEN) at start. Set: at least
 * KD_CHAN_TOKEN_MIN characters, no whitespace or control characters (it travels in an HTTP
 * header). Unset: refused inside a Kubernetes Pod (in_pod: $KUBERNETES_SERVICE_HOST is set),
 * where the channels cross a network others share, unless insecure (--insecure-channels); fine
 * elsewhere (a private rig, loopback). 0 or -EINVAL with *err saying what to do. */
#define KD_CHAN_TOKEN_MIN 16
KD_API int kd_check_chan_token(const char *token, bool in_pod, bool insecure,
                               struct kd_error **err);
/* True when this process runs in a Kubernetes Pod ($KUBERNETES_SERVICE_HOST set). */
KD_API bool kd_in_pod(void);

/* Whether addr:port (IPv4 or IPv6 literal; NULL or "": 0.0.0.0) can be bound and listened on
 * now: a socket is bound with SO_REUSEADDR, as the servers do, and closed at once. Port 0 is
 * always fine. Lets a process fail at start on a taken port, before slow work (waiting for the
 * API Server). 0, or -errno with *err naming the address ("listen 127.0.0.1:9470: Address
 * already in use"). */
KD_API int kd_listen_probe(const char *addr, int port, struct kd_error **err);

#endif /* KD_CHECK_H */
