#!/usr/bin/env bash
# Writes the student copy of the exercises crate: the starters where the
# solutions are (src/steps/), no solutions anywhere, the checks, and the
# grading tests. Usage: make-handout.sh [OUT_DIR]   (default target/handout)
# Also writes OUT_DIR.tar.gz beside it. `make handout` runs this.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="${1:-$root/target/handout}"
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"

rm -rf "$out" "$out.tar.gz"
mkdir -p "$out/src/steps" "$out/tests" "$out/examples" "$out/docs"

# Every step needs a starter; a step without one would leak its solution.
for solution in "$here"/src/steps/step*.rs; do
    name="$(basename "$solution")"
    if [[ ! -f "$here/src/starters/$name" ]]; then
        echo "make-handout: no starter for src/steps/$name" >&2
        exit 1
    fi
    cp "$here/src/starters/$name" "$out/src/steps/$name"
done
cp "$here/src/steps/mod.rs" "$out/src/steps/mod.rs"
cp -R "$here/src/checks" "$out/src/checks"
cp "$here/src/shared.rs" "$here/src/support.rs" "$out/src/"
# lib.rs without the `starters` module (the lines from the marker to it).
sed '/not-in-handout/,/^pub mod starters;/d' "$here/src/lib.rs" >"$out/src/lib.rs"
cp "$here/tests/grade.rs" "$out/tests/"
cp "$here/examples/udp_vs_tcp.rs" "$here/examples/serve_step7.rs" "$out/examples/"
cp "$here/README.md" "$out/README.md"
cp "$root/docs/protocol.md" "$out/docs/protocol.md"
{
    cat "$here/Cargo.toml"
    printf '\n# Its own workspace, so it builds even when unpacked inside another.\n[workspace]\n'
} >"$out/Cargo.toml"
printf '/target\n' >"$out/.gitignore"

tar -czf "$out.tar.gz" -C "$(dirname "$out")" "$(basename "$out")"
echo "handout: $out ($(find "$out" -type f | wc -l) files) and $out.tar.gz"
