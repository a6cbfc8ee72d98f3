#!/usr/bin/env bash
# What the proof tests need besides Python packages, installed where it is missing (make test runs this first):
#   kubectl   renders the kustomizations (tests/integration/test_k8s.py); Debian's kubernetes-client where absent
#   chromium  the page test in a real headless browser
#   apt lists that know `prometheus` (its test fetches it with apt-get download, unpacked without installing)
# Without root or apt it says in one line what is missing: those tests skip on a laptop, and fail in CI
# (HAT_REQUIRE_REAL=1), where a skip would hide a missing install step.
set -uo pipefail

packages=()
command -v kubectl >/dev/null 2>&1 || command -v kustomize >/dev/null 2>&1 || packages+=(kubernetes-client)
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
apt-cache show prometheus >/dev/null 2>&1 && lists_ok=1 || lists_ok=0

if [ ${#packages[@]} -eq 0 ] && [ "$lists_ok" = 1 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "make test: missing ${packages[*]:-}${packages[*]:+ and }$([ "$lists_ok" = 1 ] || echo 'apt lists for prometheus') (needs root and apt-get): those proof tests skip here and fail under HAT_REQUIRE_REAL=1" >&2
    exit 0
fi
echo "make test: installing test tools: ${packages[*]:-} $([ "$lists_ok" = 1 ] || echo '(apt-get update for prometheus)')" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || echo "make test: apt-get update failed" >&2
if [ ${#packages[@]} -gt 0 ]; then
    apt-get install -y -qq "${packages[@]}" >/dev/null \
        || echo "make test: apt-get install ${packages[*]} failed: those proof tests will not run" >&2
fi
exit 0
