/* ingress-gateway/match.c: the gateway's routing decisions on JSON (see match.h). */
#include "match.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kd/json.h"

json_object *kd_gw_match_path(json_object *rule, const char *target, kd_gw_header_fn header,
                              void *ud)
{
	size_t tlen = strcspn(target, "?");
	json_object *paths = kd_json_get_array(rule, "http.paths");
	for (size_t i = 0; paths && i < json_object_array_length(paths); i++) {
		json_object *p = json_object_array_get_idx(paths, i);
		const char *pp = kd_json_get_string(p, "path");
		size_t plen = pp ? strlen(pp) : 0;
		if (plen && (plen > tlen || strncmp(target, pp, plen) != 0))
			continue;
		json_object *hm = kd_json_get_object(p, "headers");
		bool ok = true;
		if (hm) {
			json_object_object_foreach(hm, name, m)
			{
				const char *want = kd_json_get_string(m, "exact");
				const char *have = header(ud, name);
				if (!want || !have || strcmp(want, have) != 0) {
					ok = false;
					break;
				}
			}
		}
		if (ok)
			return p;
	}
	return NULL;
}

static int64_t weight(json_object *split)
{
	int64_t pc = 0;
	kd_json_get_int64(split, "percent", &pc);
	return pc > 0 ? pc : 0;
}

json_object *kd_gw_pick_split(json_object *path, uint64_t roll)
{
	json_object *splits = kd_json_get_array(path, "splits");
	size_t n = splits ? json_object_array_length(splits) : 0;
	if (n == 0)
		return NULL;
	int64_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += weight(json_object_array_get_idx(splits, i));
	if (total <= 0)
		return json_object_array_get_idx(splits, 0);
	/* roll in [0, 100) scaled to [0, total) */
	int64_t r = (int64_t)((roll % 100u) * (uint64_t)total / 100u);
	for (size_t i = 0; i < n; i++) {
		int64_t w = weight(json_object_array_get_idx(splits, i));
		if (r < w)
			return json_object_array_get_idx(splits, i);
		r -= w;
	}
	return json_object_array_get_idx(splits, n - 1);
}

static bool port_is(json_object *port, json_object *want_port, const char *want_name)
{
	int64_t n = 0;
	if (want_name) {
		const char *pn = kd_json_get_string(port, "name");
		return pn && strcmp(pn, want_name) == 0;
	}
	return kd_json_get_int64(port, "port", &n) == 0 && n == json_object_get_int64(want_port);
}

/* The port of an Endpoints subset named pname (any, when the Service port has no name). */
static json_object *subset_port(json_object *sub, const char *pname)
{
	json_object *eps = kd_json_get_array(sub, "ports");
	for (size_t k = 0; eps && k < json_object_array_length(eps); k++) {
		json_object *p = json_object_array_get_idx(eps, k);
		const char *en = kd_json_get_string(p, "name");
		if (!pname || !*pname || (en && strcmp(en, pname) == 0))
			return p;
	}
	return NULL;
}

int kd_gw_endpoint(json_object *svc, json_object *ep, json_object *port, uint64_t rr, char *ip,
                   size_t iplen, int *out_port, const char **why)
{
	/* The Service port the split names (a number or a name), then its name for Endpoints. */
	const char *want_name = port && json_object_is_type(port, json_type_string)
	                            ? json_object_get_string(port)
	                            : NULL;
	json_object *ports = kd_json_get_array(svc, "spec.ports"), *sp = NULL;
	for (size_t i = 0; ports && i < json_object_array_length(ports); i++)
		if (!port || port_is(json_object_array_get_idx(ports, i), port, want_name)) {
			sp = json_object_array_get_idx(ports, i);
			break;
		}
	if (!sp) {
		*why = "the Service has no such port";
		return -ENOENT;
	}
	const char *pname = kd_json_get_string(sp, "name");
	json_object *subsets = ep ? kd_json_get_array(ep, "subsets") : NULL;
	size_t nsub = subsets ? json_object_array_length(subsets) : 0;
	/* Per subset: its port of that name (or its only one) and its ready addresses. */
	size_t total = 0;
	for (size_t s = 0; s < nsub; s++) {
		json_object *sub = json_object_array_get_idx(subsets, s);
		json_object *addrs = kd_json_get_array(sub, "addresses");
		if (subset_port(sub, pname) && addrs)
			total += json_object_array_length(addrs);
	}
	if (total == 0) {
		*why = "no ready endpoint";
		return -ENOENT;
	}
	size_t pick = (size_t)(rr % total);
	for (size_t s = 0; s < nsub; s++) {
		json_object *sub = json_object_array_get_idx(subsets, s);
		json_object *addrs = kd_json_get_array(sub, "addresses");
		json_object *epp = subset_port(sub, pname);
		size_t na = epp && addrs ? json_object_array_length(addrs) : 0;
		if (pick >= na) {
			pick -= na;
			continue;
		}
		const char *a = kd_json_get_string(json_object_array_get_idx(addrs, pick), "ip");
		int64_t p = 0;
		kd_json_get_int64(epp, "port", &p);
		if (!a || strlen(a) >= iplen || p <= 0 || p > 65535)
			break;
		snprintf(ip, iplen, "%s", a);
		*out_port = (int)p;
		return 0;
	}
	*why = "malformed Endpoints";
	return -ENOENT;
}
