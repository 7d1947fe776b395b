"""
Import-only stand-in for pylibjodi (github.com/lokingdav/libjodi, a C++ extension built from source;
not packaged by Debian). Used by `npm run bench:peer` (bench/peer/README.md).

The peer's CPS (jodi/prototype/stirshaken/cps_server.py) imports jodi.prototype.scripts.setup, whose
module imports reach pylibjodi for the JODI protocol's VOPRF, ciphering and DHT helpers. The CPS's
request path (publish, retrieve, health) calls none of them; every attribute of these stand-ins raises,
so a benchmark whose calls all succeed shows that nothing on that path used one.
"""


class _Unavailable:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        raise RuntimeError(
            f"pylibjodi.{self._name}.{attr}: pylibjodi is an import-only stand-in in the bench:peer setup"
        )


Voprf = _Unavailable("Voprf")
Oprf = _Unavailable("Oprf")
Utils = _Unavailable("Utils")
Ciphering = _Unavailable("Ciphering")
