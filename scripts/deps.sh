#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the rig need. Idempotent, non-interactive.
set -euo pipefail
PKGS=(build-essential pkg-config libcurl4-openssl-dev libjson-c-dev libwebsockets-dev
	libwebsockets-evlib-uv libuv1-dev libmicrohttpd-dev
	libcmocka-dev libssl-dev libyaml-dev clang clang-tidy clang-format cppcheck valgrind libclang-rt-14-dev
	openssl iproute2 curl procps psmisc python3 etcd-server util-linux jq wrk)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#PKGS[@]} packages present"
	exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
