"""
Import-only stand-in for pygroupsig (Python bindings of the C library libgroupsig, built from source;
not packaged by Debian). Used by `npm run bench:peer` (bench/peer/README.md).

The peer's CPS reaches it only through module imports of jodi.crypto.groupsig (group signatures of the
JODI protocol, never called on the CPS's request path). That module reads constants.BBS04_CODE when
imported; everything else raises when used.
"""


class _Unavailable:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        raise RuntimeError(
            f"pygroupsig.{self._name}.{attr}: pygroupsig is an import-only stand-in in the bench:peer setup"
        )


class constants:  # noqa: N801 (the real module's name)
    # libgroupsig's code for the BBS04 scheme; read at import time, never used by the CPS.
    BBS04_CODE = 1


groupsig = _Unavailable("groupsig")
signature = _Unavailable("signature")
memkey = _Unavailable("memkey")
grpkey = _Unavailable("grpkey")
mgrkey = _Unavailable("mgrkey")
gml = _Unavailable("gml")
