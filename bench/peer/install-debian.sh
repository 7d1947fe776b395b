#!/usr/bin/env bash
# The Debian packages the peer of `npm run bench:peer` runs on (bench/peer/README.md). Run as root.
# Nothing from PyPI: the peer's own requirements.txt pins PyPI versions; these are Debian 12's.
set -euo pipefail
apt-get update
apt-get install -y --no-install-recommends \
  python3 redis-server \
  python3-fastapi python3-starlette python3-pydantic python3-uvicorn python3-uvloop python3-httptools \
  python3-redis python3-jwt python3-cryptography python3-aiohttp python3-dotenv python3-yaml \
  python3-pymongo python3-validators python3-requests
