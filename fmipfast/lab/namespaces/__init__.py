"""The real lab of ``fmipfast lab`` (docs/design.md §6): network namespaces, veth pairs and bridges on this
machine, as root.  ``netns`` (a namespace), ``topology`` (the lab's links and addresses), ``traffic`` (the CN's
stream and its measurement), ``latency`` (the handover's latency waterfall), ``run`` (one measured handover),
``session`` (the lab kept running with its daemons)."""
