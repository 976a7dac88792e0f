#!/usr/bin/env bash
# tests/unit/test_go_toolchain.sh: scripts/go-toolchain.sh without the network and without
# touching this machine's Go: a module proxy in a temp dir (GOPROXY=file://...) serving a fake
# golang.org/toolchain zip (its bin/go a shell script) and the checksum database's answer for
# it; installs into a temp KD_GO_ROOT. Finding: the first Go >= KD_GO_MIN wins, older ones are
# skipped. Installing: checksum checked, bin/ made executable, `go version` run, an older tree
# kept as .old; a tampered zip, a too small zip, a wrong version and a missing checksum fail.
# Prints "ok NAME" / "not ok NAME" lines (tests/run-unit.sh counts them).
set -u
cd "$(dirname "$0")/../.." || exit 1
REPO="$PWD"
status=0
ok() { echo "ok $1"; }
not_ok() {
	echo "not ok $1${2:+: $2}"
	status=1
}
check() { # check NAME CMD...
	local name="$1"
	shift
	if "$@" >"$T/out" 2>&1; then ok "$name"; else not_ok "$name" "$(tail -5 "$T/out")"; fi
}
check_fails() { # check_fails NAME EXPECTED-MESSAGE CMD...
	local name="$1" msg="$2"
	shift 2
	if "$@" >"$T/out" 2>&1; then
		not_ok "$name" "succeeded"
	elif ! grep -qF -- "$msg" "$T/out"; then
		not_ok "$name" "no \"$msg\" in: $(tail -3 "$T/out")"
	else
		ok "$name"
	fi
}
command -v python3 >/dev/null || {
	echo "not ok python3 missing"
	exit 1
}
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT

# fake go binaries: "go env GOVERSION" and "go version"
fake_go() { # fake_go DIR VERSION
	mkdir -p "$1/bin"
	cat >"$1/bin/go" <<EOF
#!/bin/sh
case "\$1" in
env) echo go$2 ;;
version) echo "go version go$2 linux/amd64" ;;
esac
EOF
	chmod +x "$1/bin/go"
}
fake_go "$T/old" 1.24.9
fake_go "$T/new" 1.26.8

export KD_GO_MIN=1.25 KD_GO_VERSION=1.99.1 KD_GO_ROOT="$T/root/go"
export KD_GO_CANDIDATES="" # not this machine's /usr/local/go
unset KD_GO
find_with() { PATH="$1:/usr/bin:/bin" KD_GO="${2:-}" bash "$REPO/scripts/go-toolchain.sh" find 2>/dev/null; }
out="$(find_with "$T/old/bin")"
[ -z "$out" ] && ok "an old Go alone is not found" || not_ok "an old Go alone is not found" "$out"
out="$(find_with "$T/old/bin:$T/new/bin")"
[ "$out" = "$T/new/bin/go" ] && ok "the first Go >= KD_GO_MIN is found past an old one" ||
	not_ok "the first Go >= KD_GO_MIN is found past an old one" "$out"
out="$(find_with "$T/old/bin" "$T/new/bin/go")"
[ "$out" = "$T/new/bin/go" ] && ok "KD_GO is a candidate" || not_ok "KD_GO is a candidate" "$out"

# the fake proxy
arch=amd64
case "$(uname -m)" in aarch64 | arm64) arch=arm64 ;; esac
P="$T/proxy"
make_zip() { # make_zip VERSION [TAMPER [VERSION-ITS-GO-REPORTS]]
	local zv="v0.0.1-go$1.linux-$arch" src="$T/src" says="${3:-$1}"
	rm -rf "$src"
	mkdir -p "$src/golang.org/toolchain@$zv/bin" "$src/golang.org/toolchain@$zv/src"
	cat >"$src/golang.org/toolchain@$zv/bin/go" <<EOF
#!/bin/sh
case "\$1" in
env) echo go$says ;;
version) echo "go version go$says linux/$arch" ;;
esac
EOF
	echo "package main" >"$src/golang.org/toolchain@$zv/src/x.go"
	mkdir -p "$P/golang.org/toolchain/@v" "$P/sumdb/sum.golang.org/lookup/golang.org"
	python3 - "$src" "$P/golang.org/toolchain/@v/$zv.zip" "golang.org/toolchain@$zv" \
		"$P/sumdb/sum.golang.org/lookup/golang.org/toolchain@$zv" "${2:-}" <<'PY'
import base64, hashlib, os, sys, zipfile
src, zpath, prefix, lookup, tamper = sys.argv[1:6]
lines = []
with zipfile.ZipFile(zpath, "w") as z:  # module zips carry no file modes
    for d, _, files in os.walk(os.path.join(src, prefix)):
        for f in files:
            full = os.path.join(d, f)
            name = os.path.relpath(full, src)
            data = open(full, "rb").read()
            z.writestr(zipfile.ZipInfo(name), data)
            lines.append((name, "%s  %s\n" % (hashlib.sha256(data).hexdigest(), name)))
lines.sort()  # by file name, as Go's dirhash.Hash1
h1 = "h1:" + base64.b64encode(hashlib.sha256("".join(l for _, l in lines).encode()).digest()).decode()
if tamper:
    h1 = "h1:" + base64.b64encode(hashlib.sha256(b"other").digest()).decode()
mod, ver = prefix.split("@")
with open(lookup, "w") as f:
    f.write("1234\n%s %s %s\n%s %s/go.mod h1:x=\n\ngo.sum database tree\n" % (mod, ver, h1, mod, ver))
PY
}
make_zip 1.99.1
export GOPROXY="off,file://$P,direct" KD_GO_MIN_ZIP_BYTES=100
unset GOSUMDB
inst() { PATH="$T/old/bin:/usr/bin:/bin" bash "$REPO/scripts/go-toolchain.sh" ensure; }
mkdir -p "$KD_GO_ROOT" && echo previous >"$KD_GO_ROOT/marker"
check "ensure installs the pinned Go from the proxy when none is found" inst
[ -x "$KD_GO_ROOT/bin/go" ] && [ "$("$KD_GO_ROOT/bin/go" version)" = "go version go1.99.1 linux/$arch" ] &&
	ok "the installed bin/go is executable and runs version" ||
	not_ok "the installed bin/go is executable and runs version" "$(ls -l "$KD_GO_ROOT/bin" 2>&1)"
grep -q "checksum h1:.* matches the checksum database" "$T/out" && ok "the checksum was verified" ||
	not_ok "the checksum was verified" "$(cat "$T/out")"
[ -f "$KD_GO_ROOT.old/marker" ] && [ ! -e "$KD_GO_ROOT/marker" ] && ok "the previous tree is kept as .old" ||
	not_ok "the previous tree is kept as .old"
[ -z "$(ls -A "$T/root" | grep '^\.go-install')" ] && ok "no scratch directory left" ||
	not_ok "no scratch directory left" "$(ls -A "$T/root")"
out="$(PATH="$T/old/bin:/usr/bin:/bin" bash "$REPO/scripts/go-toolchain.sh" ensure 2>&1)"
grep -q "Go 1.99.1 at $KD_GO_ROOT/bin/go" <<<"$out" && ok "a second ensure finds it and downloads nothing" ||
	not_ok "a second ensure finds it and downloads nothing" "$out"

export KD_GO_ROOT="$T/root2/go"
make_zip 1.99.1 tamper
check_fails "a zip whose checksum differs is refused" "checksum mismatch" inst
[ ! -e "$KD_GO_ROOT" ] && ok "nothing installed after a refusal" || not_ok "nothing installed after a refusal"
GOSUMDB=off check "GOSUMDB=off skips the checksum database" inst
rm -rf "$KD_GO_ROOT" "$KD_GO_ROOT.old"
make_zip 1.99.1
rm "$P/sumdb/sum.golang.org/lookup/golang.org/toolchain@v0.0.1-go1.99.1.linux-$arch"
check_fails "a missing checksum fails" "cannot read the checksum" inst
make_zip 1.99.1
KD_GO_MIN_ZIP_BYTES=50000000 check_fails "a zip too small for a toolchain fails" "not a Go toolchain" inst
KD_GO_VERSION=1.99.2 check_fails "a version the proxy does not serve fails" "download failed" inst
make_zip 1.99.4 "" 1.99.3
KD_GO_VERSION=1.99.4 check_fails "a toolchain that is another version fails" "does not run as go1.99.4" inst
[ ! -e "$KD_GO_ROOT" ] && ok "still nothing installed" || not_ok "still nothing installed"
exit $status
