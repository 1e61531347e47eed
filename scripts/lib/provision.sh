# shellcheck shell=bash
# Sourced by scripts/run and scripts/test. Installs what Hearth needs to build
# and test, and exports the environment that makes the build use it.
#
# Every step checks first and does nothing when its tool is already present, so
# a second run costs a few seconds. Two paths lead to a wasm32 toolchain:
#   1. rustup can add the wasm32-unknown-unknown target (a normal machine), or
#   2. rustup cannot download (an offline build machine). Then we install
#      Debian's Rust ("rustc-web") with its standard-library source, build the
#      wasm32 std once into Debian's sysroot, and link it as the rustup
#      toolchain "debian-web". Everything (native and wasm) then builds with
#      that one toolchain, so one target dir serves both and clippy matches.

set -euo pipefail

HEARTH_ROOT=${HEARTH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# The wasm-bindgen CLI must match the crate version pinned in Cargo.toml.
WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' "$HEARTH_ROOT/Cargo.toml")
TRUNK_VERSION=0.21.14
AXE_VERSION=4.14.1
# Lighthouse 13 needs Node 22; Debian's is 20 (scripts/lighthouse).
LIGHTHOUSE_VERSION=12.2.3
# tsc, to check the JavaScript package's types (scripts/js-package).
TYPESCRIPT_VERSION=5.9.3
# terser, to minify wasm-bindgen's generated glue: the app's (scripts/lib/post-build.sh)
# and the JavaScript package's (scripts/js-package).
TERSER_VERSION=5.51.4
# twiggy, to name the wasm's largest functions when the size budget fails
# (scripts/test installs it then, not before).
TWIGGY_VERSION=0.8.0
DEBIAN_TOOLCHAIN=debian-web
# The browser app's release build: a pinned nightly that rebuilds the
# standard library for size (build_frontend_release; docs/frontend-size.md).
WASM_NIGHTLY=nightly-2026-05-20
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1;34m[hearth]\033[0m %s\n' "$*" >&2; }

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || { log "apt-get not found: please install: $*"; return 1; }
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  local log=${TMPDIR:-/tmp}/hearth-apt.log
  log "apt-get install $* (log: $log)"
  if [ "$APT_UPDATED" = 0 ]; then
    $sudo apt-get update -qq >>"$log" 2>&1
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >>"$log" 2>&1 ||
    { log "apt-get failed; see $log"; tail -20 "$log" >&2; return 1; }
}

toolchain_has_wasm_std() { # $1 = sysroot
  compgen -G "$1/lib/rustlib/wasm32-unknown-unknown/lib/libstd-*.rlib" >/dev/null
}

# Builds core/alloc/std/test for wasm32 from Debian's rust-src into its sysroot.
build_debian_wasm_std() {
  local scratch
  scratch=$(mktemp -d)
  log "building the wasm32 standard library into /usr/lib/rustlib (about a minute)"
  mkdir -p "$scratch/src"
  printf '[package]\nname = "wasmstd_seed"\nversion = "0.0.0"\nedition = "2021"\n[lib]\npath = "src/lib.rs"\n[workspace]\n' >"$scratch/Cargo.toml"
  : >"$scratch/src/lib.rs"
  # -Cembed-bitcode=yes: release builds with LTO need the bitcode section.
  # "test" in the list: wasm test builds link against libtest.
  (cd "$scratch" && RUSTUP_TOOLCHAIN= RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS=-Cembed-bitcode=yes \
    /usr/bin/cargo build -q --release --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort,test >&2)
  local dest=/usr/lib/rustlib/wasm32-unknown-unknown/lib
  mkdir -p "$dest"
  find "$scratch/target/wasm32-unknown-unknown/release/deps" -name 'lib*.rlib' ! -name 'libwasmstd_seed-*' -exec cp {} "$dest/" \;
  rm -rf "$scratch"
}

provision_toolchain() {
  if [ -n "${HEARTH_TOOLCHAIN_READY:-}" ]; then return; fi
  command -v rustup >/dev/null || { log "rustup is required (https://rustup.rs)"; exit 1; }
  # HEARTH_FORCE_DEBIAN_TOOLCHAIN=1 takes the offline path even where rustup
  # works, to check that path on a machine that has a choice.
  local force=${HEARTH_FORCE_DEBIAN_TOOLCHAIN:-}
  # Fast path 1: the default toolchain already has the wasm32 target.
  if [ -z "$force" ] && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    log "toolchain: rustup default with wasm32"
  # Fast path 2: a previous run set up the Debian toolchain.
  elif rustup toolchain list 2>/dev/null | grep -q "^$DEBIAN_TOOLCHAIN" && toolchain_has_wasm_std /usr; then
    export RUSTUP_TOOLCHAIN=$DEBIAN_TOOLCHAIN
    log "toolchain: $DEBIAN_TOOLCHAIN (Debian rustc with a locally built wasm32 std)"
  elif [ -z "$force" ] && timeout 60 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
    log "toolchain: rustup default, wasm32 target added"
  else
    log "rustup cannot add wasm32 here; using Debian's Rust instead"
    if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || ! command -v /usr/bin/cargo-clippy >/dev/null; then
      apt_install rustc-web cargo-web rust-web-src rust-web-clippy rustfmt-web lld-22
    fi
    toolchain_has_wasm_std /usr || build_debian_wasm_std
    rustup toolchain list | grep -q "^$DEBIAN_TOOLCHAIN" || rustup toolchain link "$DEBIAN_TOOLCHAIN" /usr
    export RUSTUP_TOOLCHAIN=$DEBIAN_TOOLCHAIN
  fi
  # clippy and rustfmt come with both toolchains above; a minimal rustup
  # profile may lack them.
  if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
    timeout 120 rustup component add clippy rustfmt >&2 || log "could not add clippy/rustfmt"
  fi
  export HEARTH_TOOLCHAIN_READY=1
}

cargo_tool() { # $1 = binary, $2 = expected version, rest = cargo install args
  local bin=$1 want=$2
  shift 2
  if command -v "$bin" >/dev/null && "$bin" --version 2>/dev/null | grep -qF " $want"; then return; fi
  log "installing $bin $want (first run only, several minutes)"
  cargo install -q "$@" >&2
}

provision_web_tools() {
  provision_toolchain
  cargo_tool trunk "$TRUNK_VERSION" trunk --version "$TRUNK_VERSION" --locked
  # Not --locked: one locked dependency version is missing from some registries.
  cargo_tool wasm-bindgen "$WASM_BINDGEN_VERSION" wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  provision_wasm_opt
  provision_wasm_nightly
  provision_terser
  # Precompressed assets (scripts/lib/post-build.sh, a trunk hook).
  command -v brotli >/dev/null || apt_install brotli
  # trunk must never reach for the network: it would try to download tools.
  export TRUNK_SKIP_VERSION_CHECK=true
}

# The release wasm's toolchain: $WASM_NIGHTLY with the standard library's
# source, so that std itself is compiled for size and without panic
# messages (`-Zbuild-std`, `-Cpanic=immediate-abort`): 30 KB less brotli
# than the precompiled std, which carries every panic's message and location
# and the formatting machinery that prints them. A machine where rustup
# cannot download it builds with the default toolchain instead, and says so:
# that wasm is larger than scripts/size-budget allows.
provision_wasm_nightly() {
  if [ -n "${HEARTH_WASM_NIGHTLY:-}" ]; then return; fi
  local sysroot
  if sysroot=$(rustup run "$WASM_NIGHTLY" rustc --print sysroot 2>/dev/null) &&
    [ -d "$sysroot/lib/rustlib/src/rust/library" ] &&
    [ -d "$sysroot/lib/rustlib/wasm32-unknown-unknown" ]; then
    :
  else
    log "installing $WASM_NIGHTLY with rust-src (first run only, a minute)"
    if ! timeout 600 rustup toolchain install "$WASM_NIGHTLY" --profile minimal \
      --component rust-src --target wasm32-unknown-unknown >&2; then
      log "warning: could not install $WASM_NIGHTLY: the release wasm is built with the default toolchain's std (about 30 KB larger, over scripts/size-budget)"
      export HEARTH_WASM_NIGHTLY=none
      return
    fi
  fi
  export HEARTH_WASM_NIGHTLY=$WASM_NIGHTLY
}

# `trunk build --release` with the release wasm's toolchain: std rebuilt
# with `optimize_for_size`, panics that abort without formatting a message
# (none is ever shown: a panic in the app is a bug either way, and the
# browser's console still gets the trap), no file/line strings and no Debug
# formatting (the app never shows `{:?}` to a person). Each flag is measured
# in docs/frontend-size.md. `--cfg erase_components` repeats
# .cargo/config.toml, which a RUSTFLAGS variable would otherwise replace.
build_frontend_release() {
  if [ "${HEARTH_WASM_NIGHTLY:-none}" = none ]; then
    trunk build --release --offline "$@"
    return
  fi
  RUSTUP_TOOLCHAIN=$HEARTH_WASM_NIGHTLY \
    CARGO_UNSTABLE_BUILD_STD=std,panic_abort \
    CARGO_UNSTABLE_BUILD_STD_FEATURES=optimize_for_size \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="--cfg erase_components -Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none" \
    trunk build --release --offline "$@"
}

# wasm-opt for release builds, from the npm `binaryen` package (the version
# Trunk.toml names), into the project's own .tools/.
provision_wasm_opt() {
  local want=132 bin="$HEARTH_ROOT/.tools/node_modules/.bin"
  export PATH="$bin:$PATH"
  if wasm-opt --version 2>/dev/null | grep -q "version $want"; then return; fi
  command -v npm >/dev/null || apt_install nodejs npm
  log "installing wasm-opt $want (npm binaryen) into .tools/"
  npm install --silent --no-audit --no-fund --prefix "$HEARTH_ROOT/.tools" "binaryen@$want" >&2
}

provision_browser() {
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    log "installing Chromium and ChromeDriver"
    apt_install chromium chromium-driver
  fi
  # Reactions are emoji: without a font for them, screenshots show boxes.
  [ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || apt_install fonts-noto-color-emoji
  export CHROMEDRIVER=/usr/bin/chromedriver
  export HEARTH_CHROMIUM=/usr/bin/chromium
  # axe-core, injected into the app by the e2e test to check accessibility.
  local axe="$HEARTH_ROOT/.tools/node_modules/axe-core/axe.min.js"
  if ! grep -qs '"version": "'"$AXE_VERSION"'"' "$HEARTH_ROOT/.tools/node_modules/axe-core/package.json"; then
    command -v npm >/dev/null || apt_install nodejs npm
    log "installing axe-core $AXE_VERSION (npm) into .tools/"
    npm install --silent --no-audit --no-fund --prefix "$HEARTH_ROOT/.tools" "axe-core@$AXE_VERSION" >&2
  fi
  export HEARTH_AXE_JS=$axe
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
  export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$HEARTH_ROOT/frontend/webdriver.json"
  # The driver test watches hostile servers for 25 s on top of a restart test.
  export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-120}
}

# TypeScript's compiler, for scripts/js-package to check the package's types
# the way a TypeScript app would use them.
provision_typescript() {
  if ! grep -qs '"version": "'"$TYPESCRIPT_VERSION"'"' "$HEARTH_ROOT/.tools/node_modules/typescript/package.json"; then
    command -v npm >/dev/null || apt_install nodejs npm
    log "installing typescript $TYPESCRIPT_VERSION (npm) into .tools/"
    npm install --silent --no-audit --no-fund --prefix "$HEARTH_ROOT/.tools" -E "typescript@$TYPESCRIPT_VERSION" >&2
  fi
  export HEARTH_TSC="$HEARTH_ROOT/.tools/node_modules/.bin/tsc"
}

# terser, for scripts/js-package: wasm-bindgen's glue, minified.
provision_terser() {
  if ! grep -qs '"version": "'"$TERSER_VERSION"'"' "$HEARTH_ROOT/.tools/node_modules/terser/package.json"; then
    command -v npm >/dev/null || apt_install nodejs npm
    log "installing terser $TERSER_VERSION (npm) into .tools/"
    npm install --silent --no-audit --no-fund --prefix "$HEARTH_ROOT/.tools" -E "terser@$TERSER_VERSION" >&2
  fi
  export HEARTH_TERSER="$HEARTH_ROOT/.tools/node_modules/.bin/terser"
}

# Lighthouse, for scripts/lighthouse (needs provision_browser for Chromium).
provision_lighthouse() {
  if ! grep -qs '"version": "'"$LIGHTHOUSE_VERSION"'"' "$HEARTH_ROOT/.tools/node_modules/lighthouse/package.json"; then
    command -v npm >/dev/null || apt_install nodejs npm
    log "installing lighthouse $LIGHTHOUSE_VERSION (npm) into .tools/"
    npm install --silent --no-audit --no-fund --prefix "$HEARTH_ROOT/.tools" -E "lighthouse@$LIGHTHOUSE_VERSION" >&2
  fi
  export HEARTH_LIGHTHOUSE="$HEARTH_ROOT/.tools/node_modules/.bin/lighthouse"
}

# Autobahn|Testsuite (PyPI `autobahntestsuite`) for the WebSocket conformance
# test (backend/tests/server/autobahn.rs). It runs on Python 2.7 only, which
# this project's build machines have under pyenv.
provision_autobahn() {
  local python=${HEARTH_PYTHON2:-${PYENV_ROOT:-$HOME/.pyenv}/versions/2.7.18/bin/python}
  local wstest
  wstest="$(dirname "$python")/wstest"
  if [ ! -x "$wstest" ]; then
    [ -x "$python" ] || { log "Python 2.7 not found at $python (set HEARTH_PYTHON2): Autobahn cannot run"; return 1; }
    log "installing autobahntestsuite (PyPI) for Python 2.7"
    "$python" -m pip install -q autobahntestsuite >&2
  fi
  export HEARTH_WSTEST=$wstest
}

# Redis and PostgreSQL on loopback for the store and broker tests. A build
# machine usually has them running; elsewhere we install and start them.
provision_services() {
  if ! port_open 6379; then
    command -v redis-server >/dev/null || apt_install redis-server
    log "starting redis on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >&2
    wait_for_port 6379 redis
  fi
  export HEARTH_TEST_REDIS_URL=${HEARTH_TEST_REDIS_URL:-redis://127.0.0.1:6379}
  if ! port_open 5432; then
    command -v pg_ctlcluster >/dev/null || apt_install postgresql
    local ver
    ver=$(ls /etc/postgresql | sort -V | tail -1)
    log "starting postgresql $ver on 127.0.0.1:5432"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2 2>/dev/null || pg_ctlcluster "$ver" main start >&2
    wait_for_port 5432 postgresql
    # A cluster we started ourselves has no test database and no password
    # login over TCP: give it both.
    runuser -u postgres -- psql -qc "ALTER USER postgres PASSWORD 'hearth'" >&2
    runuser -u postgres -- createdb test 2>/dev/null || true
    export HEARTH_TEST_POSTGRES_URL=${HEARTH_TEST_POSTGRES_URL:-postgres://postgres:hearth@127.0.0.1:5432/test}
  fi
  export HEARTH_TEST_POSTGRES_URL=${HEARTH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() { # $1 = port, $2 = name
  for _ in $(seq 100); do port_open "$1" && return; sleep 0.2; done
  log "$2 did not start on port $1"
  return 1
}
