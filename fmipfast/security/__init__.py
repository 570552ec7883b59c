"""Security for fmipfast (docs/design.md §4): IPsec AH between routers (:mod:`.ah`), the sub-option 7 message
authentication code (:mod:`.mac`), light-weight Kerberos (:mod:`.lwkerb`) and its UDP KDC (:mod:`.kdc`).

All cryptography of the project lives in this package and uses only the ``cryptography`` package
(docs/conventions.md §7).  Submodules are imported explicitly (``from fmipfast.security import ah``) so that
importing the package costs nothing.
"""

__all__ = ["ah", "kdc", "lwkerb", "mac"]
