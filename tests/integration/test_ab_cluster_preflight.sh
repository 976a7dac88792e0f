#!/usr/bin/env bash
# bench/ab --kubeconfig (bench/cluster/run.sh) refuses, with exit 1 and what is missing, before
# it creates anything: an API Server that does not answer, and a cluster with Knative but no
# kubedirect (the rig without rig/kd-start: no MutatingWebhookConfiguration of ours holding a
# CA); bad arguments are exit 2. (A full run needs kubedirect installed: README "A/B on your
# cluster"; on the rig, after rig/kd-start.)
. "$(dirname "$0")/lib.sh"

AB="$REPO/bench/ab"
run() { # EXPECTED-RC WHAT ARGS...: runs bench/ab, checks the exit code; output in $out
	local want="$1" what="$2" rc
	shift 2
	set +e
	out="$(timeout 60 "$AB" "$@" 2>&1)"
	rc=$?
	set -e
	expect_eq "$what: exit $want" "$want" "$rc"
}
[[ -z "$(kc get mutatingwebhookconfigurations -l app.kubernetes.io/part-of=kubedirect -o name)" ]] ||
	{ log "skip: a kubedirect webhook is registered on the rig (rig/kd-start?)"; exit 0; }
before="$(kc get namespaces -o name | grep -c kd-ab- || true)"

run 2 "no file" --kubeconfig /nonexistent
grep -q "not a readable file" <<<"$out" || die "message: $out"
SCENARIOS=bogus run 2 "unknown scenario (env)" --kubeconfig "$KD_KUBECONFIG"
grep -q "unknown scenario 'bogus'" <<<"$out" || die "message: $out"

bad="$(mktemp)"
trap 'rm -f "$bad"' EXIT
sed 's#server: https://[^ ]*#server: https://10.88.0.250:6443#' "$KD_KUBECONFIG" >"$bad"
run 1 "API Server not answering" --kubeconfig "$bad"
grep -q "cannot reach the API Server https://10.88.0.250:6443" <<<"$out" || die "message: $out"

run 1 "Knative but no kubedirect" --kubeconfig "$KD_KUBECONFIG"
grep -q "kubedirect is not installed on https://10.88.0.2:6443" <<<"$out" || die "message: $out"
grep -q "kubectl apply -k manifests/" <<<"$out" || die "message does not say how: $out"
expect_eq "no namespace created by a refused run" "$before" "$(kc get namespaces -o name | grep -c kd-ab- || true)"
