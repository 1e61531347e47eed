#!/usr/bin/env sh
# trunk post-build hook (Trunk.toml), release builds only:
#
# 1. minifies wasm-bindgen's glue (trunk minifies the page and the
#    stylesheet, not the glue) with terser, when scripts/lib/provision.sh
#    has put it in HEARTH_TERSER, and gives index.html the glue's new
#    subresource-integrity hash (the browser refuses a script whose hash
#    differs): 9.8 KB → 7.6 KB brotli;
# 2. writes .br and .gz next to every text and wasm asset, so the server
#    sends them precompressed (tower-http's ServeDir picks the variant the
#    browser accepts). Brotli needs the `brotli` command (provision.sh
#    installs it); without it, gzip alone.
set -eu
[ "${TRUNK_PROFILE:-release}" = release ] || exit 0
dir=${TRUNK_STAGING_DIR:?run by trunk}
size() { wc -c <"$1"; }
sri() { printf 'sha384-%s' "$(openssl dgst -sha384 -binary "$1" | openssl base64 -A)"; }

if [ -n "${HEARTH_TERSER:-}" ]; then
  for f in "$dir"/*.js; do
    [ -f "$f" ] || continue
    before=$(sri "$f")
    "$HEARTH_TERSER" "$f" --module --compress --mangle -o "$f.min"
    mv "$f.min" "$f"
    after=$(sri "$f")
    # base64 has / and +, never |; + is literal in a basic regex.
    sed -i "s|$before|$after|" "$dir/index.html"
    grep -q "$after" "$dir/index.html" || { echo "post-build: no integrity for $(basename "$f") in index.html" >&2; exit 1; }
  done
fi

for f in "$dir"/*.wasm "$dir"/*.js "$dir"/*.css "$dir"/*.html "$dir"/*.txt; do
  [ -f "$f" ] || continue
  gzip -9 -k -f -n "$f"
  if command -v brotli >/dev/null 2>&1; then brotli -q 11 -k -f "$f"; fi
  # A "compressed" copy that is not smaller would only cost bytes.
  for c in "$f.gz" "$f.br"; do
    if [ -f "$c" ] && [ "$(size "$c")" -ge "$(size "$f")" ]; then rm -f "$c"; fi
  done
done
