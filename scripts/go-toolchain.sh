#!/usr/bin/env bash
# scripts/go-toolchain.sh: finds a Go >= $KD_GO_MIN for rig/build and, when there is none,
# installs the pinned one ($KD_GO_VERSION, rig/versions.env) from the Go module proxy, where
# Go's own toolchain is published as the module golang.org/toolchain (what GOTOOLCHAIN fetches).
#
#   scripts/go-toolchain.sh find      prints the path of the first Go >= KD_GO_MIN, or fails
#   scripts/go-toolchain.sh ensure    find, else install into $KD_GO_ROOT; prints the go path
#   (sourced: defines kd_go_find and kd_go_install; rig/build and scripts/deps.sh use them)
#
# Candidates, in order: $KD_GO, every `go` in PATH, $KD_GO_ROOT/bin/go, /usr/local/go/bin/go,
# /var/cache/kubedirect/go/bin/go (those two: KD_GO_CANDIDATES, space-separated, to override).
# KD_GO_ROOT (default /usr/local/go) is where ensure installs.
#
# The install downloads $GOPROXY/golang.org/toolchain/@v/v0.0.1-go<ver>.linux-<arch>.zip with
# curl (GOPROXY: its first http(s) or file entry; default https://proxy.golang.org), checks its
# size, its go.sum hash (h1:, the module zip's dirhash) against the checksum database through
# the same proxy ($GOPROXY/sumdb/sum.golang.org/lookup/...; GOSUMDB=off skips that, with a
# warning), unpacks it next to KD_GO_ROOT, marks bin/ and pkg/tool/ executable (module zips carry
# no file modes; the go command does the same), runs its `go version`, then moves it into place
# (an older Go there is kept as KD_GO_ROOT.old). Needs curl and python3 (scripts/deps.sh).
# KD_GO_MIN_ZIP_BYTES (default 50 MB) is the smallest zip accepted: a toolchain is about 75 MB.

KD_GO_SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${KD_GO_MIN:-}" || -z "${KD_GO_VERSION:-}" ]]; then
	# shellcheck source=rig/versions.env
	. "$KD_GO_SRC_DIR/../rig/versions.env"
fi
KD_GO_ROOT="${KD_GO_ROOT:-/usr/local/go}"

kd_go_say() { printf 'go-toolchain: %s\n' "$*" >&2; }

# kd_go_version_ok GO: true when GO runs and is >= KD_GO_MIN; its version on stdout.
kd_go_version_ok() {
	local v
	v="$("$1" env GOVERSION 2>/dev/null)" || return 1
	v="${v#go}"
	[[ -n "$v" ]] || return 1
	echo "$v"
	printf '%s\n%s\n' "$KD_GO_MIN" "${v%%[-+ ]*}" | sort -V -C
}

# kd_go_find: the first candidate Go >= KD_GO_MIN on stdout; fails when none is.
kd_go_find() {
	local c cands=()
	[[ -n "${KD_GO:-}" ]] && cands+=("$KD_GO")
	while IFS= read -r c; do cands+=("$c"); done < <(type -ap go 2>/dev/null)
	cands+=("$KD_GO_ROOT/bin/go")
	# shellcheck disable=SC2206 # a list of paths without spaces
	cands+=(${KD_GO_CANDIDATES-/usr/local/go/bin/go /var/cache/kubedirect/go/bin/go})
	KD_GO_TOO_OLD="" # "PATH goVERSION" of each candidate that runs but is older than KD_GO_MIN
	local v
	for c in "${cands[@]}"; do
		[[ -x "$c" ]] || continue
		if v="$(kd_go_version_ok "$c")"; then
			echo "$c"
			return 0
		fi
		[[ -n "$v" ]] && KD_GO_TOO_OLD+="${KD_GO_TOO_OLD:+; }$c go$v"
	done
	return 1
}

# The proxy URL to download from: the first http(s)/file entry of GOPROXY.
kd_go_proxy() {
	local p="${GOPROXY:-https://proxy.golang.org}" e
	for e in ${p//[,|]/ }; do
		case "$e" in
		http://* | https://* | file://*)
			echo "${e%/}"
			return 0
			;;
		esac
	done
	echo https://proxy.golang.org
}

kd_go_arch() {
	case "$(uname -m)" in
	x86_64 | amd64) echo amd64 ;;
	aarch64 | arm64) echo arm64 ;;
	*) return 1 ;;
	esac
}

# kd_go_install [VERSION [ROOT]]: installs Go VERSION (default KD_GO_VERSION) into ROOT (default
# KD_GO_ROOT); prints ROOT/bin/go. Fails with a message naming what failed.
kd_go_install() {
	local ver="${1:-$KD_GO_VERSION}" root="${2:-$KD_GO_ROOT}" arch proxy mod zipver url tmp
	arch="$(kd_go_arch)" || {
		kd_go_say "no Go toolchain for $(uname -m)"
		return 1
	}
	proxy="$(kd_go_proxy)"
	mod=golang.org/toolchain
	zipver="v0.0.1-go$ver.linux-$arch"
	url="$proxy/$mod/@v/$zipver.zip"
	mkdir -p "$(dirname "$root")" || return 1
	tmp="$(mktemp -d "$(dirname "$root")/.go-install.XXXXXX")" || return 1
	local rc=0
	kd__go_install_in "$tmp" "$ver" "$root" "$arch" "$proxy" "$mod" "$zipver" "$url" || rc=$?
	rm -rf "$tmp"
	return $rc
}

# The steps of kd_go_install, working in the scratch directory $1 (removed by the caller).
kd__go_install_in() {
	local tmp="$1" ver="$2" root="$3" arch="$4" proxy="$5" mod="$6" zipver="$7" url="$8"
	kd_go_say "downloading $mod@$zipver from $proxy"
	if ! curl -fsSL --retry 3 --connect-timeout 20 -o "$tmp/go.zip" "$url"; then
		kd_go_say "download failed: $url"
		return 1
	fi
	local size min="${KD_GO_MIN_ZIP_BYTES:-50000000}"
	size="$(stat -c %s "$tmp/go.zip")"
	if ((size < min || size > 1000000000)); then
		kd_go_say "$url: $size bytes, not a Go toolchain (expected $min..1000000000)"
		return 1
	fi
	# the module zip's go.sum hash (dirhash Hash1 over "<sha256>  <name>\n" of every file, by
	# name), and the unpacked tree without the module prefix
	local h1
	h1="$(python3 - "$tmp/go.zip" "$tmp/go" "$mod@$zipver/" <<'PY'
import base64, hashlib, os, stat, sys, zipfile
zpath, dest, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
lines = []
with zipfile.ZipFile(zpath) as z:
    for info in z.infolist():
        name = info.filename
        if name.endswith("/"):
            continue
        if not name.startswith(prefix) or ".." in name.split("/"):
            sys.exit("unexpected file in the module zip: " + name)
        data = z.read(info)
        lines.append((name, "%s  %s\n" % (hashlib.sha256(data).hexdigest(), name)))
        rel = name[len(prefix):]
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            f.write(data)
        parts = rel.split("/")
        exe = parts[0] == "bin" or (len(parts) == 4 and parts[:2] == ["pkg", "tool"])
        os.chmod(out, 0o755 if exe else 0o644)
lines.sort()  # by file name, as Go's dirhash.Hash1
print("h1:" + base64.b64encode(hashlib.sha256("".join(l for _, l in lines).encode()).digest()).decode())
PY
)" || {
		kd_go_say "$url: not a readable module zip"
		return 1
	}
	if [[ "${GOSUMDB:-}" == off ]]; then
		kd_go_say "warning: GOSUMDB=off: $mod@$zipver ($h1) not checked against the checksum database"
	else
		local want
		want="$(curl -fsSL --retry 3 --connect-timeout 20 "$proxy/sumdb/sum.golang.org/lookup/$mod@$zipver" |
			awk -v m="$mod" -v v="$zipver" '$1 == m && $2 == v { print $3; exit }')"
		if [[ -z "$want" ]]; then
			kd_go_say "cannot read the checksum of $mod@$zipver from $proxy/sumdb/sum.golang.org (GOSUMDB=off skips the check)"
			return 1
		fi
		if [[ "$want" != "$h1" ]]; then
			kd_go_say "$url: checksum mismatch: got $h1, the checksum database says $want"
			return 1
		fi
		kd_go_say "checksum $h1 matches the checksum database"
	fi
	local out
	if ! out="$(GOTOOLCHAIN=local "$tmp/go/bin/go" version 2>&1)" || [[ "$out" != "go version go$ver linux/$arch"* ]]; then
		kd_go_say "the unpacked go does not run as go$ver: $out"
		return 1
	fi
	if [[ -e "$root" ]]; then
		rm -rf "$root.old"
		mv "$root" "$root.old" || return 1
		kd_go_say "kept the previous $root as $root.old"
	fi
	mv "$tmp/go" "$root" || return 1
	kd_go_say "installed $out into $root"
	echo "$root/bin/go"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	set -euo pipefail
	case "${1:-}" in
	find)
		kd_go_find || {
			kd_go_say "no Go >= $KD_GO_MIN (tried \$KD_GO, PATH, $KD_GO_ROOT/bin/go ${KD_GO_CANDIDATES-/usr/local/go/bin/go /var/cache/kubedirect/go/bin/go})"
			exit 1
		}
		;;
	ensure)
		if g="$(kd_go_find)"; then
			kd_go_say "Go $(kd_go_version_ok "$g") at $g"
			echo "$g"
		else
			kd_go_say "no Go >= $KD_GO_MIN found: installing go$KD_GO_VERSION into $KD_GO_ROOT"
			kd_go_install "$KD_GO_VERSION" "$KD_GO_ROOT"
		fi
		;;
	*)
		echo "usage: $0 find|ensure" >&2
		exit 2
		;;
	esac
fi
