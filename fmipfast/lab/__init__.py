"""The handover scenario as something to run and measure, in two halves that share nothing but the scenario:

* :mod:`fmipfast.lab.simulated` -- the simulated world of ``fmipfast demo``: one process, a discrete-event
  simulator's virtual time and in-memory links (``sim``), host stacks (``host``), the topology and its
  measurements (``world``), the fast handover's drivers (``handover``) and the demo's modes and report
  (``demo``).  No root, every run exact and repeatable.
* :mod:`fmipfast.lab.namespaces` -- the real lab of ``fmipfast lab``: network namespaces (``netns``), veth
  pairs and bridges (``topology``), the CN's stream (``traffic``), the latency waterfall (``latency``), one
  measured handover (``run``) and the lab kept running with its daemons (``session``).  Root.

Beside them: :mod:`fmipfast.lab.mitrealms` (throwaway MIT Kerberos realms, which both halves use for the
gssapi mechanism) and :mod:`fmipfast.lab.sample` (the sample capture).  Neither half imports the other
(tests/test_imports.py).
"""
