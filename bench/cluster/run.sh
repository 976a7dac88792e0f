#!/usr/bin/env bash
# bench/cluster/run.sh (`bench/ab --kubeconfig FILE`): the A/B comparison against a cluster of
# your own where kubedirect is installed (manifests/). Both arms are Knative Services identical
# except the class annotation (kd: autoscaling.knative.dev/class kd.kubedirect.dev; vanilla: none,
# Knative's KPA), in a namespace of their own, created and measured alternately (the order flips
# each repeat), REPEATS times each; every wait is bounded by TIMEOUT.
# Scenarios (SCENARIOS, default "first scale"):
#  - first: a new Service at its default initial scale (1): seconds from `kubectl apply` to the
#    Service Ready (Route and Revision Ready: routable through your ingress);
#  - scale: a new Service with initial-scale and min-scale N (min-scale: an idle revision would
#    be scaled down by either autoscaler as soon as it is initialized): seconds from
#    `kubectl apply` to the Revision's actualReplicas = N (Pods Ready, as Knative counts them).
# Both arms are measured the same way, through the API Server, so the figures are comparable with
# each other and not with the embedded rig's. Refuses, with exit 1 and what is missing, when the
# API Server is not reachable, Knative Serving is not installed, or kubedirect is not (its
# MutatingWebhookConfiguration with a caBundle, its kd-autoscaler Deployment available).
# Options: --kubeconfig FILE (required), --image IMAGE (the function both arms run, default
# ghcr.io/knative/helloworld-go:latest), --namespace NS (default kd-ab-<time>, deleted after),
# --kd-namespace NS (where kubedirect runs, default kubedirect).
# Env: SCENARIOS, N (scale, default 10), REPEATS (3), TIMEOUT (s per wait, 300), KUBECTL
# (default: kubectl on PATH, else the rig's), KD_AB_OUT (report folder, default
# ./kd-ab-cluster-<time>). The report folder holds report.json (every sample, the settings) and
# summary.txt; the last line printed is `report: <folder>`.
set -euo pipefail
usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }
KCFG="" IMAGE="ghcr.io/knative/helloworld-go:latest" ABNS="kd-ab-$(date -u +%H%M%S)" KDNS=kubedirect
while (($#)); do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--kubeconfig) KCFG="${2:-}"; shift 2 || { echo "kd-ab: --kubeconfig needs a file" >&2; exit 2; } ;;
	--image) IMAGE="${2:-}"; shift 2 || { echo "kd-ab: --image needs a value" >&2; exit 2; } ;;
	--namespace) ABNS="${2:-}"; shift 2 || { echo "kd-ab: --namespace needs a value" >&2; exit 2; } ;;
	--kd-namespace) KDNS="${2:-}"; shift 2 || { echo "kd-ab: --kd-namespace needs a value" >&2; exit 2; } ;;
	*) echo "kd-ab: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
[[ -n "$KCFG" ]] || { echo "kd-ab: --kubeconfig FILE is required (see --help)" >&2; exit 2; }
[[ -r "$KCFG" ]] || { echo "kd-ab: --kubeconfig $KCFG: not a readable file" >&2; exit 2; }
[[ "$ABNS" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || { echo "kd-ab: --namespace '$ABNS' is not a DNS-1123 label" >&2; exit 2; }
SCENARIOS="${SCENARIOS:-first scale}" N="${N:-10}" REPEATS="${REPEATS:-3}" TIMEOUT="${TIMEOUT:-300}"
for s in $SCENARIOS; do
	[[ $s == first || $s == scale ]] || { echo "kd-ab: unknown scenario '$s' (first, scale)" >&2; exit 2; }
done
[[ "$N" =~ ^[1-9][0-9]*$ && "$REPEATS" =~ ^[1-9][0-9]*$ && "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] ||
	{ echo "kd-ab: N, REPEATS and TIMEOUT must be positive integers" >&2; exit 2; }
for t in jq awk; do command -v "$t" >/dev/null || { echo "kd-ab: $t is needed (apt-get install $t)" >&2; exit 1; }; done
KUBECTL="${KUBECTL:-$(command -v kubectl || echo /var/cache/kubedirect/bin/k8s-v1.35.4/kubectl)}"
[[ -x "$KUBECTL" ]] || { echo "kd-ab: no kubectl (set KUBECTL)" >&2; exit 1; }
kc() { "$KUBECTL" --kubeconfig "$KCFG" --request-timeout=20s "$@"; }
say() { printf 'kd-ab: %s\n' "$*"; }

# --- preflight -------------------------------------------------------------------------------
server="$(kc config view --minify -o jsonpath='{.clusters[0].cluster.server}' 2>/dev/null || true)"
errf="$(mktemp)"
if ! out="$(kc version -o json 2>"$errf")"; then
	echo "kd-ab: cannot reach the API Server ${server:-of $KCFG}: $(tail -n 1 "$errf")" >&2
	rm -f "$errf"
	exit 1
fi
rm -f "$errf"
kc get crd services.serving.knative.dev >/dev/null 2>&1 ||
	{ echo "kd-ab: Knative Serving is not installed on $server (no CRD services.serving.knative.dev)" >&2; exit 1; }
kn_ver="$(kc get crd services.serving.knative.dev -o jsonpath='{.metadata.labels.app\.kubernetes\.io/version}' 2>/dev/null || true)"
hooks="$(kc get mutatingwebhookconfigurations -l app.kubernetes.io/part-of=kubedirect -o json 2>/dev/null |
	jq -r '[.items[] | select([.webhooks[]? | .clientConfig.caBundle // ""] | any(. != ""))] | length' 2>/dev/null || echo 0)"
((hooks > 0)) || {
	echo "kd-ab: kubedirect is not installed on $server: no MutatingWebhookConfiguration labelled app.kubernetes.io/part-of=kubedirect holding its CA (kubectl apply -k manifests/)" >&2
	exit 1
}
avail="$(kc -n "$KDNS" get deployment kd-autoscaler -o jsonpath='{.status.availableReplicas}' 2>/dev/null || true)"
if [[ -z "$avail" || "$avail" == 0 ]]; then
	# the rig runs kd-autoscaler as a process (rig/kd-start): its webhook being trusted is the sign
	if [[ "$server" != "https://10.88.0.2:6443" ]]; then
		echo "kd-ab: kubedirect is not running on $server: Deployment $KDNS/kd-autoscaler has no available replica (kubectl -n $KDNS get pods)" >&2
		exit 1
	fi
	say "the embedded rig: kd-autoscaler runs as a process (rig/kd-start)"
fi
k8s_ver="$(jq -r '.serverVersion.gitVersion' <<<"$out")"
say "cluster $server: Kubernetes $k8s_ver, Knative Serving ${kn_ver:-?}, kubedirect webhook trusted"

OUT="${KD_AB_OUT:-$PWD/kd-ab-cluster-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
SAMPLES="$OUT/samples.jsonl"
: >"$SAMPLES"
kc create namespace "$ABNS" >/dev/null
cleanup() { kc delete namespace "$ABNS" --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT

# --- one measurement -------------------------------------------------------------------------
now_ms() { echo $(($(date +%s%N) / 1000000)); }
apply_svc() { # NAME ARM INITIAL [MIN]
	local cls="" min=""
	[[ $2 == kd ]] && cls="        autoscaling.knative.dev/class: kd.kubedirect.dev"
	[[ -n "${4:-}" ]] && min="        autoscaling.knative.dev/min-scale: \"$4\""
	kc -n "$ABNS" apply -f - 2>&1 >/dev/null <<EOT
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: $1, labels: {kubedirect.dev/ab-arm: $2}}
spec:
  template:
    metadata:
      annotations:
${cls:+$cls
}        autoscaling.knative.dev/initial-scale: "$3"${min:+
$min}
    spec:
      containers: [{image: $IMAGE}]
EOT
}
svc_ready() { [[ "$(kc -n "$ABNS" get ksvc "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]; }
rev_at() { # NAME N
	local rev
	rev="$(kc -n "$ABNS" get ksvc "$1" -o jsonpath='{.status.latestCreatedRevisionName}' 2>/dev/null)"
	[[ -n "$rev" && "$(kc -n "$ABNS" get revision "$rev" -o jsonpath='{.status.actualReplicas}' 2>/dev/null)" == "$2" ]]
}
# wait_ms T0 CMD...: ms from T0 until CMD succeeds (polled every 0.2 s), or -1 after TIMEOUT
wait_ms() {
	local t0="$1" deadline=$((SECONDS + TIMEOUT))
	shift
	until "$@"; do
		((SECONDS < deadline)) || { echo -1; return 0; }
		sleep 0.2
	done
	echo $(($(now_ms) - t0))
}
gone() { [[ -z "$(kc -n "$ABNS" get ksvc,pods -o name 2>/dev/null)" ]]; }
measure() { # SCENARIO ARM REPEAT
	local scen="$1" arm="$2" rep="$3" name="$2-$1-$3" t0 ms initial=1
	[[ $scen == scale ]] && initial="$N"
	t0="$(now_ms)"
	local min=""
	[[ $scen == scale ]] && min="$N" # held at N: both autoscalers would scale an idle N down
	local err
	err="$(apply_svc "$name" "$arm" "$initial" "$min")" || { say "$name: kubectl apply failed: $err"; ms=-1; }
	if [[ ${ms:-} != -1 ]]; then
		if [[ $scen == first ]]; then ms="$(wait_ms "$t0" svc_ready "$name")"; else ms="$(wait_ms "$t0" rev_at "$name" "$N")"; fi
	fi
	printf '{"scenario":"%s","arm":"%s","repeat":%d,"n":%d,"ms":%d}\n' "$scen" "$arm" "$rep" "$initial" "$ms" >>"$SAMPLES"
	if ((ms < 0)); then say "$scen $arm #$rep: no figure (not within ${TIMEOUT}s, or not created)"; else say "$scen $arm #$rep: $ms ms"; fi
	kc -n "$ABNS" delete ksvc "$name" --wait=false >/dev/null 2>&1 || true
	local t1=$SECONDS
	until gone; do ((SECONDS - t1 < TIMEOUT)) || { say "$name: still there after ${TIMEOUT}s"; break; }; sleep 1; done
}

for scen in $SCENARIOS; do
	for ((r = 1; r <= REPEATS; r++)); do
		if ((r % 2)); then order="kd vanilla"; else order="vanilla kd"; fi
		for arm in $order; do measure "$scen" "$arm" "$r"; done
	done
done

# --- report ----------------------------------------------------------------------------------
jq -s --arg server "$server" --arg k8s "$k8s_ver" --arg kn "${kn_ver:-}" --arg image "$IMAGE" \
	--argjson n "$N" --argjson repeats "$REPEATS" --argjson timeout "$TIMEOUT" '
	def med: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
		else (.[length / 2 - 1] + .[length / 2]) / 2 end;
	{settings: {server: $server, kubernetes: $k8s, knative_serving: $kn, image: $image, n: $n,
	             repeats: $repeats, timeout_s: $timeout},
	 samples: .,
	 summary: (group_by(.scenario) | map({scenario: .[0].scenario,
	    arms: (group_by(.arm) | map({arm: .[0].arm,
	        ok: [.[] | select(.ms >= 0) | .ms] | length,
	        median_ms: ([.[] | select(.ms >= 0) | .ms] | med),
	        min_ms: ([.[] | select(.ms >= 0) | .ms] | min),
	        max_ms: ([.[] | select(.ms >= 0) | .ms] | max)}))}))}' "$SAMPLES" >"$OUT/report.json"
{
	printf '%-8s %-30s %-22s %-22s %s\n' scenario metric kd vanilla vanilla/kd
	jq -r --argjson n "$N" '
		def cell(x): if (x.median_ms // null) == null then "-" else "\(x.median_ms) [\(x.min_ms)-\(x.max_ms)]" end;
		.summary[] | .scenario as $s | ((.arms | map({(.arm): .}) | add) // {}) as $a |
		[$s, (if $s == "first" then "apply -> Service Ready (ms)" else "apply -> \($n) Pods Ready (ms)" end),
		 cell($a.kd // {}), cell($a.vanilla // {}),
		 (if (($a.kd.median_ms // 0) > 0) and (($a.vanilla.median_ms // null) != null)
		  then ($a.vanilla.median_ms / $a.kd.median_ms * 100 | round / 100 | tostring) else "-" end)] |
		@tsv' "$OUT/report.json" | awk -F'\t' '{printf "%-8s %-30s %-22s %-22s %s\n", $1, $2, $3, $4, $5}'
	echo "medians over $REPEATS repeats [min-max]; arms alternated; the same image ($IMAGE) and namespace"
} | tee "$OUT/summary.txt"
echo "report: $OUT"
