#!/usr/bin/env bash
# Live streaming in a real browser through the StreamSpace session proxy (see README.md).
# Needs: Docker running with the session images built (scripts/images/build.sh),
# /usr/bin/chromium, Node 20+. Exits non-zero when a check fails.
exec "$(dirname "${BASH_SOURCE[0]}")/../suite.sh" streaming
