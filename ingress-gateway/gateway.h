/* ingress-gateway/gateway.h: kd-gateway's internal header. A Knative ingress class of ours
 * (networking.knative.dev/ingress.class, default "ingress.kubedirect.dev", what rig/up sets as
 * config-network's ingress-class) in one process on one kd_loop:
 *  - routes.c: the KIngress controller: watches networking.internal.knative.dev/v1alpha1
 *              Ingresses of our class, indexes their rules by host, and writes their status as
 *              Knative's net-* implementations do (NetworkConfigured, LoadBalancerReady, Ready;
 *              public and private load balancer = this gateway's --public-ip); watches the
 *              Services and Endpoints the splits name.
 *  - proxy.c:  the gateway: routes each request by Host and path (and the rule's header matches)
 *              to one split by its percent, sets the split's and the path's appendHeaders (the
 *              Knative-Serving-* headers among them), rewrites Host when asked, and forwards
 *              through lib/http to an address of the split's Service Endpoints: Knative's
 *              activator or the pods for vanilla revisions, kd-activator for kd ones. Answers
 *              Knative's ingress probes (K-Network-Probe: probe, K-Network-Hash) for the
 *              configuration it serves. Admin: /healthz, /readyz, /metrics, /debug/hosts.
 * Not thread-safe: everything on the loop thread. */
#ifndef KD_GATEWAY_H
#define KD_GATEWAY_H

#include <stdbool.h>
#include <stdint.h>

#include "kd/common.h"
#include "kd/error.h"
#include "kd/http.h"
#include "kd/k8s.h"
#include "kd/loop.h"
#include "kd/strmap.h"
#include "kd/watch.h"

#define KD_GW_CLASS_DEFAULT "ingress.kubedirect.dev"

struct kd_gw_cfg {
	char *kubeconfig;
	char *context;
	char *ingress_class;
	char *bind;
	uint64_t port;
	char *admin_bind;
	uint64_t admin_port;
	char *public_ip;
	uint64_t timeout_ms;
	int log_level;
	int log_format;
};

/* One host of one KIngress rule. */
struct kd_gw_host {
	char *host;    /* lower case, no port: its key in kd_gw.hosts */
	char *ingress; /* "ns/name" of the KIngress (in ing_inf's cache) */
	size_t rule;   /* index in spec.rules */
	char *hash;    /* the configuration's hash (K-Network-Hash) */
};

struct kd_gw {
	struct kd_gw_cfg cfg;
	struct kd_loop *loop;
	struct kd_k8s *k8s;
	struct kd_informer *ing_inf, *svc_inf, *ep_inf;
	struct kd_strmap hosts; /* host -> struct kd_gw_host * (owned) */
	struct kd_http_server *http, *admin;
	uint64_t rr; /* round-robin counter over endpoint addresses */
	/* counters (/metrics) */
	uint64_t requests, no_route, no_endpoints, probes, status_writes, status_errors, ok_2xx,
	    resp_4xx, resp_5xx;
};

/* ---- routes.c ---- */
int kd_gw_routes_start(struct kd_gw *g, struct kd_error **err);
void kd_gw_routes_stop(struct kd_gw *g);
bool kd_gw_routes_synced(const struct kd_gw *g);
/* The rule serving host (lower case, no port), with its KIngress (borrowed until the loop next
 * runs informer code), or NULL. */
const struct kd_gw_host *kd_gw_route(struct kd_gw *g, const char *host,
                                     struct json_object **ingress, struct json_object **rule);
/* An address (ip, port) of Service ns/name's port `port` (a number or a name, as an Ingress
 * split gives it): 0 with ip (>= 46 bytes) and *out_port set, or -ENOENT with *why. */
int kd_gw_backend(struct kd_gw *g, const char *ns, const char *name, struct json_object *port,
                  char *ip, size_t iplen, int *out_port, const char **why);

/* ---- proxy.c ---- */
int kd_gw_proxy_start(struct kd_gw *g, struct kd_error **err);
void kd_gw_proxy_stop(struct kd_gw *g);

#endif /* KD_GATEWAY_H */
