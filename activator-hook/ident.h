/* activator-hook/ident.h: which revision a request to kd-activator names, from its header values
 * alone (no I/O), so the parsing is unit-tested (tests/unit/test_act_ident.c) and fuzzed
 * (tests/fuzz/fuzz_act_identify.c) on its own. */
#ifndef KD_ACT_IDENT_H
#define KD_ACT_IDENT_H

#define KD_ACT_HDR_NS  "Knative-Serving-Namespace"
#define KD_ACT_HDR_REV "Knative-Serving-Revision"

/* The revision a request names: the values of its Knative-Serving-Namespace and
 * Knative-Serving-Revision headers when both are non-empty, else the first two labels of its Host
 * (<revision>[-private].<namespace>[.<anything>][:<port>]; "-private" is stripped once, from a
 * longer first label). Each argument is NULL when the header is absent. Returns 0 with *ns and
 * *name owned (free()) and non-empty, or -ENOENT with both untouched. */
int kd_act_identify(const char *ns_header, const char *rev_header, const char *host, char **ns,
                    char **name);

#endif /* KD_ACT_IDENT_H */
