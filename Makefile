.PHONY: setup test demo bench

setup:
	bash scripts/setup.sh

test: setup
	.venv/bin/python -m pytest -q

demo: setup
	.venv/bin/sereca demo water

bench: setup
	.venv/bin/python benchmarks/attest.py --json
	.venv/bin/python benchmarks/cas.py --json --services 200
	.venv/bin/python benchmarks/bus.py --json
	.venv/bin/python benchmarks/water.py --json
