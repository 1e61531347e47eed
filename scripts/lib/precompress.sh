#!/usr/bin/env sh
# trunk post-build hook (Trunk.toml): writes .br and .gz next to every text
# and wasm asset of a release build, so the server sends them precompressed
# (tower-http's ServeDir picks the variant the browser accepts). Brotli needs
# the `brotli` command (scripts/lib/provision.sh installs it); without it,
# gzip alone.
set -eu
[ "${TRUNK_PROFILE:-release}" = release ] || exit 0
dir=${TRUNK_STAGING_DIR:?run by trunk}
size() { wc -c <"$1"; }
for f in "$dir"/*.wasm "$dir"/*.js "$dir"/*.css "$dir"/*.html "$dir"/*.txt; do
  [ -f "$f" ] || continue
  gzip -9 -k -f -n "$f"
  if command -v brotli >/dev/null 2>&1; then brotli -q 11 -k -f "$f"; fi
  # A "compressed" copy that is not smaller would only cost bytes.
  for c in "$f.gz" "$f.br"; do
    if [ -f "$c" ] && [ "$(size "$c")" -ge "$(size "$f")" ]; then rm -f "$c"; fi
  done
done
