"""Optional integrations with third-party packages.  Nothing here is imported by ``import fmipfast``; each
module needs its own extra dependency (``fmipfast.contrib.scapy`` needs scapy)."""
