/* kd/curlm.h: one curl multi handle driven by a kd_loop: curl's socket and timer callbacks become
 * kd_loop fd watches and a timer, so curl transfers run on the process's one loop (kd/loop.h).
 * Used by the Kubernetes client (kd/k8s.h) and the HTTP forwarder (kd/http.h).
 * Not thread-safe: every call on the loop thread. */
#ifndef KD_CURLM_H
#define KD_CURLM_H

#include <curl/curl.h>
#include <stdbool.h>

#include "kd/common.h"
#include "kd/loop.h"

struct kd_curlm;

/* A transfer finished (result CURLE_OK or the error). The easy handle was already removed from
 * the multi handle; it stays the caller's (curl_easy_cleanup or reuse). */
typedef void (*kd_curlm_done_cb)(void *ud, CURL *easy, CURLcode result);
/* Called after every round of curl work (socket or timer event), once the finished transfers were
 * reported: the place for work that must not run inside curl's callbacks. May be NULL. */
typedef void (*kd_curlm_after_cb)(void *ud);

/* Returns owned (kd_curlm_free); aborts if curl cannot allocate. `name` (borrowed, static)
 * prefixes log lines. */
KD_API struct kd_curlm *kd_curlm_new(struct kd_loop *loop, const char *name, kd_curlm_done_cb done,
                                     kd_curlm_after_cb after, void *ud);
/* Frees the multi handle. Transfers still added are removed (not reported) and stay the caller's.
 */
KD_API void kd_curlm_free(struct kd_curlm *m);
/* The multi handle, for curl_multi_setopt; borrowed. Add and remove easies with the calls below. */
KD_API CURLM *kd_curlm_multi(struct kd_curlm *m);
/* curl_multi_add_handle; 0 or -EINVAL. The transfer starts on the next loop iteration. Every
 * easy handle goes through here (not curl_multi_add_handle): it sets the handle's
 * CURLOPT_CLOSESOCKETFUNCTION, which the loop needs to drop an idle connection's watch. */
KD_API int kd_curlm_add(struct kd_curlm *m, CURL *easy);
/* curl_multi_remove_handle; never call it from inside one of that transfer's curl callbacks
 * (check kd_curlm_inside). */
KD_API void kd_curlm_remove(struct kd_curlm *m, CURL *easy);
/* True while curl runs (its callbacks may be on the stack): defer removals until `after`. */
KD_API bool kd_curlm_inside(const struct kd_curlm *m);

#endif /* KD_CURLM_H */
