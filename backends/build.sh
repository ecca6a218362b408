#!/usr/bin/env bash
# Builds the two programs tests/backends runs, from their Go modules, into backends/bin/:
#   bin/jaeger                  Jaeger v2.12.0 (module github.com/jaegertracing/jaeger v1.75.0, a Go tool
#                               of backends/jaeger/go.mod)
#   bin/otelcol-promptrecorder  an OpenTelemetry Collector v0.165.0 with exactly the components
#                               config/otel-collector.yaml uses (backends/collector/main.go)
#
# A binary is rebuilt only when its stamp changes: the hash of its go.mod, go.sum, main.go (collector)
# and `go version`. So a second run takes about a second. The module cache and the build cache stay in
# Go's default places (GOMODCACHE, GOCACHE), so CI on the same machine reuses what a session fetched
# and compiled. Cold and warm figures: config/README.md.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
bin="$here/bin"
mkdir -p "$bin"

# The stamp: everything that decides what `go build` produces here.
stamp_of() {
    local dir="$1"
    {
        go version
        cd "$dir" && sha256sum go.mod go.sum ./*.go 2>/dev/null || true
    } | sha256sum | cut -d' ' -f1
}

# build_one NAME MODULE_DIR PACKAGE
build_one() {
    local name="$1" dir="$here/$2" package="$3"
    local stamp_file="$bin/.$name.stamp" stamp start
    stamp="$(stamp_of "$dir")"
    if [[ -x "$bin/$name" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
        echo "backends/build.sh: $name is up to date (warm: reused bin/$name)"
        return
    fi
    start=$SECONDS
    echo "backends/build.sh: building $name from $2/go.mod (a cold build fetches modules and takes minutes)"
    # -buildvcs=false: the binary must not depend on the state of this git checkout.
    (cd "$dir" && go build -buildvcs=false -o "$bin/$name.tmp" "$package")
    mv "$bin/$name.tmp" "$bin/$name"
    echo "$stamp" >"$stamp_file"
    echo "backends/build.sh: built $name in $((SECONDS - start)) s"
}

total_start=$SECONDS
build_one otelcol-promptrecorder collector .
build_one jaeger jaeger github.com/jaegertracing/jaeger/cmd/jaeger
echo "backends/build.sh: done in $((SECONDS - total_start)) s ($bin)"
