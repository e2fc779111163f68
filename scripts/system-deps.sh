#!/usr/bin/env bash
# Install the system tools Shipway's tests use, when we are root and they are missing.
# Not root: say what is missing and how to install it; the tests that need it skip with a reason.
set -euo pipefail

missing=()
command -v git  >/dev/null || missing+=(git)
command -v bwrap >/dev/null || missing+=(bubblewrap)
{ command -v prlimit && command -v setpriv; } >/dev/null || missing+=(util-linux)
command -v npm  >/dev/null || missing+=(nodejs npm)
command -v go   >/dev/null || missing+=(golang-go)   # optional: the Go test-runner tests skip without it
command -v chromium >/dev/null || missing+=(chromium) # the review page's browser test (driven by Playwright)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]}"
  echo "  Debian/Ubuntu: sudo apt-get install ${missing[*]}"
  echo "  Fedora:        sudo dnf install ${missing[*]}"
  echo "  Arch:          sudo pacman -S ${missing[*]}"
fi
