PY ?= python3

.PHONY: compile debug test test-pure consts bench bench-forward annotate clean fuzz fuzz-build

compile:
	$(PY) -m pip install -e '.[test]' --no-build-isolation

debug:
	FMIPFAST_DEBUG=1 $(PY) -m pip install -e '.[test]' --no-build-isolation

test:
	FMIPFAST_REQUIRE_EXTENSIONS=1 $(PY) -m pytest -q

test-pure:
	FMIPFAST_PUREPYTHON=1 $(PY) -m pytest -q

consts:  # includes/consts.pxi from fmipfast/constants.py (docs/conventions.md §5)
	$(PY) -m fmipfast._genconsts

BENCHES = wire classify ncache bufq gil security protocol fib

bench:
	for b in $(BENCHES); do PYTHONPATH=. $(PY) bench/bench_$$b.py --fast -o bench/$$b.json || exit 1; done

bench-forward:  # root: namespaces, veth, AF_PACKET
	PYTHONPATH=. $(PY) bench/bench_forward.py --quick
	PYTHONPATH=. $(PY) bench/bench_latency.py

annotate:
	FMIPFAST_ANNOTATE=1 $(PY) setup.py build_ext --inplace --force

# The standing fuzz campaign (fuzz/README.md): every target for FUZZ_SECONDS (default 10 min), new crash inputs
# saved under fuzz/regressions/; `make fuzz-build` first for the clang ASan+UBSan build with native coverage.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= classify node ring ring_node ring_frames messages pcap lwkerb ah config control

fuzz:
	status=0; for t in $(FUZZ_TARGETS); do PYTHONPATH=. $(PY) -m fuzz run $$t --seconds $(FUZZ_SECONDS) --save || status=1; done; exit $$status

fuzz-build:  # needs clang (apt-get install clang)
	FMIPFAST_FUZZ=1 FMIPFAST_DEBUG=1 $(PY) setup.py -q build_ext --inplace --force
	PYTHONPATH=. $(PY) -m fuzz runtime

clean:
	rm -rf build *.egg-info fmipfast/*.so fmipfast/_core.c fmipfast/_core.html fuzz/.work
