#!/usr/bin/env bash
# Sharing a session with a viewer and a collaborator, in two headless Chromium browsers (see README.md).
# Needs: Docker running with streamspace/chromium built (scripts/images/build.sh chromium),
# /usr/bin/chromium, Node 20+. Exits non-zero when a check fails.
exec "$(dirname "${BASH_SOURCE[0]}")/../suite.sh" sharing
