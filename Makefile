PY ?= python3

.PHONY: compile debug test test-pure bench bench-forward annotate clean

compile:
	$(PY) -m pip install -e '.[test]' --no-build-isolation

debug:
	FMIPFAST_DEBUG=1 $(PY) -m pip install -e '.[test]' --no-build-isolation

test:
	FMIPFAST_REQUIRE_EXTENSIONS=1 $(PY) -m pytest -q

test-pure:
	FMIPFAST_PUREPYTHON=1 $(PY) -m pytest -q

BENCHES = wire classify ncache bufq gil security protocol

bench:
	for b in $(BENCHES); do PYTHONPATH=. $(PY) bench/bench_$$b.py --fast -o bench/$$b.json || exit 1; done

bench-forward:  # root: namespaces, veth, AF_PACKET
	PYTHONPATH=. $(PY) bench/bench_forward.py --quick

annotate:
	FMIPFAST_ANNOTATE=1 $(PY) setup.py build_ext --inplace --force

clean:
	rm -rf build *.egg-info fmipfast/*.so fmipfast/_core.c fmipfast/_core.html
