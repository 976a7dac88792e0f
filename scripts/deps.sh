#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the rig need, then makes sure a Go >=
# KD_GO_MIN (rig/versions.env) is there for rig/build, installing the pinned KD_GO_VERSION from the
# Go module proxy when none is (scripts/go-toolchain.sh; KD_GO_ROOT, default /usr/local/go).
# Idempotent, non-interactive. Not installed: a container engine for `make images`, which the
# build, the tests, the rig and CI do not need (images/README.md): apt-get install podman (or
# buildah).
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(build-essential pkg-config libcurl4-openssl-dev libjson-c-dev libwebsockets-dev
	libwebsockets-evlib-uv libuv1-dev libmicrohttpd-dev libgnutls28-dev
	libcmocka-dev libssl-dev libyaml-dev clang clang-tidy clang-format cppcheck valgrind libclang-rt-14-dev
	openssl ca-certificates iproute2 curl procps psmisc python3 etcd-server util-linux jq wrk gnuplot-nox)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#PKGS[@]} packages present"
else
	echo "deps: installing ${missing[*]}"
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Go for rig/build (the upstream Kubernetes, Knative and etcd builds); skip with KD_DEPS_NO_GO=1.
if [ "${KD_DEPS_NO_GO:-}" != 1 ]; then
	go="$(scripts/go-toolchain.sh ensure)"
	echo "deps: Go: $go"
fi
