test:
	scripts/test

# make bench BENCH_ARGS=--quick for the short run
bench:
	scripts/bench $(BENCH_ARGS)

.PHONY: test bench
