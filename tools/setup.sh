#!/usr/bin/env bash
# Installs the Debian packages mmgpt needs, only if some are missing. `--fixtures` adds the Python
# reference stack (python3-torch and friends) used to regenerate tests/fixtures.
set -euo pipefail
# pkg-config and man-db: test_install builds the example with pkg-config and renders the installed man page.
pkgs=(gcc make libopenblas-dev libopenblas-openmp-dev libcmocka-dev libjson-c-dev libjpeg62-turbo-dev libpng-dev libwebp-dev libgif-dev zlib1g-dev libedit-dev libmicrohttpd-dev tmux pkg-config man-db)
# --test: what the browser and OpenAI-client tests of `mmgpt serve` need (chromium, node and their npm packages).
# They are optional: if they cannot be installed the tests that need them say so and skip. node/npm count as
# present when the commands exist (e.g. from NodeSource, whose nodejs conflicts with Debian's npm).
extras=()
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null || extras+=(chromium)
  command -v node >/dev/null || extras+=(nodejs)
  command -v npm >/dev/null || extras+=(npm)
fi
if [ "${1:-}" = "--fixtures" ]; then
  pkgs+=(python3-torch python3-numpy python3-pil sentencepiece python3-sentencepiece)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ${#extras[@]} -gt 0 ]; then
  echo "setup: installing ${extras[*]} (for the browser and OpenAI-client tests)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${extras[@]}" >/dev/null; } ||
    echo "setup: could not install ${extras[*]}; the tests that need them will be skipped"
fi
if [ "${1:-}" = "--test" ] && [ ! -d tests/web/node_modules ] && command -v npm >/dev/null; then
  echo "setup: npm packages for tests/web (playwright-core, openai)"
  (cd tests/web && npm ci --no-audit --no-fund --loglevel=error) || echo "setup: npm install failed; the browser and OpenAI-client tests will be skipped"
fi
