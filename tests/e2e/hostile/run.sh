#!/usr/bin/env bash
# A hostile tenant against `streamspace up` in headless Chromium (see README.md).
# Needs: Docker running with streamspace/fixture and streamspace/hostile built
# (scripts/images/build.sh fixture hostile), ui/dist built before the binary (make ui),
# /usr/bin/chromium, Node 20+. Exits non-zero when any attack succeeds.
exec "$(dirname "${BASH_SOURCE[0]}")/../suite.sh" hostile
