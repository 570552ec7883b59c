PY ?= python3

.PHONY: compile debug test test-pure bench annotate clean

compile:
	$(PY) -m pip install -e '.[test]' --no-build-isolation

debug:
	FMIPFAST_DEBUG=1 $(PY) -m pip install -e '.[test]' --no-build-isolation

test:
	FMIPFAST_REQUIRE_EXTENSIONS=1 $(PY) -m pytest -q

test-pure:
	FMIPFAST_PUREPYTHON=1 $(PY) -m pytest -q

bench:
	$(PY) bench/bench_wire.py -o bench/wire.json

annotate:
	FMIPFAST_ANNOTATE=1 $(PY) setup.py build_ext --inplace --force

clean:
	rm -rf build *.egg-info fmipfast/*.so fmipfast/_core.c fmipfast/_core.html
