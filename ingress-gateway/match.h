/* ingress-gateway/match.h: the gateway's decisions on KIngress and Endpoints JSON, no I/O (the
 * caller hands in the objects from its informers), so they are unit-tested on their own
 * (tests/unit/test_gw_match.c). Returned objects are borrowed from the arguments. */
#ifndef KD_GW_MATCH_H
#define KD_GW_MATCH_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

/* Looks a request header up (case-insensitive); NULL if absent. */
typedef const char *(*kd_gw_header_fn)(void *ud, const char *name);

/* The first path of an Ingress rule that matches the request target (path prefix; an empty or
 * absent path matches everything) and all of whose `headers` match exactly; NULL if none. */
json_object *kd_gw_match_path(json_object *rule, const char *target, kd_gw_header_fn header,
                              void *ud);

/* One split of a path by its percent: `roll` is uniform in [0, 100) (weights are scaled to
 * their sum, so 50/50, 1/1 and 100 all work); no positive weight: the first split; NULL if the
 * path has no split. */
json_object *kd_gw_pick_split(json_object *path, uint64_t roll);

/* An address of Service svc's port `port` (a number or a name, as an Ingress split gives it;
 * NULL: the first port) among the ready addresses of its Endpoints ep, chosen by rr (round
 * robin): 0 with ip (iplen bytes) and *out_port set, or -ENOENT with *why. */
int kd_gw_endpoint(json_object *svc, json_object *ep, json_object *port, uint64_t rr, char *ip,
                   size_t iplen, int *out_port, const char **why);

#endif /* KD_GW_MATCH_H */
