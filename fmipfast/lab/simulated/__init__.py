"""The simulated world of ``fmipfast demo`` (docs/design.md §6): virtual time and in-memory links, one process,
no root.  ``sim`` (the simulator), ``host`` (a minimal IPv6 host), ``world`` (the topology, the stream and the
measurements), ``handover`` (the fast handover's protocol drivers), ``demo`` (the modes, the report)."""
