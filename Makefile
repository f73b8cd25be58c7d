# The two commands: `make bench` and `make test`.
# Each installs what it needs on Debian/Ubuntu (apt-get, as root or through
# sudo) and otherwise prints the exact apt-get line and stops.

JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
PEERS     ?= erlang,go
REPEAT    ?= 3
BUILD     ?= build
CMAKE_GEN ?=

BUILD_PKGS := cmake pkg-config gcc make liburing-dev libjemalloc-dev check perl
PEER_PKGS  := erlang-base erlang-dev golang-go gnuplot-nox
# the example servers' tests (real clients, libFuzzer) and their benchmark
# (the baselines nginx and redis-server, perf for the system-call counts)
SERVER_PKGS       := curl wrk redis-tools clang
SERVER_BENCH_PKGS := $(SERVER_PKGS) nginx-light redis-server linux-perf
FUZZ_SECS         ?= 15
BENCH_PKGS := libgmp-dev linux-perf

.PHONY: all build test bench deps deps-bench test-layers test-plain test-asan test-tsan test-install \
        test-bench-smoke clean deps-servers test-fuzz fuzz test-servers-asan bench-servers

all: build

deps:
	@scripts/ensure-deps.sh $(BUILD_PKGS) $(SERVER_PKGS)

deps-servers:
	@scripts/ensure-deps.sh $(BUILD_PKGS) $(SERVER_BENCH_PKGS)

deps-bench:
	@if [ "$(PEERS)" = "none" ]; then scripts/ensure-deps.sh $(BUILD_PKGS) $(BENCH_PKGS); \
	 else scripts/ensure-deps.sh $(BUILD_PKGS) $(BENCH_PKGS) $(PEER_PKGS); fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)

# make test: the whole suite plain, then under ASan+UBSan, then under TSan,
# then the installed-package check and a quick run of every benchmark.
test: deps
	$(MAKE) --no-print-directory test-layers
	$(MAKE) --no-print-directory test-plain
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory test-tsan
	$(MAKE) --no-print-directory test-install
	$(MAKE) --no-print-directory test-bench-smoke
	$(MAKE) --no-print-directory test-servers-asan
	$(MAKE) --no-print-directory test-fuzz
	@echo "make test: all stages passed"

# Every #include in the library points down or sideways (see the script).
test-layers:
	scripts/check-layers.sh

test-plain:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build -j$(JOBS)
	cd build && ctest --output-on-failure -j$(JOBS)

test-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHIVE_SANITIZE=address,undefined \
	      -DHIVE_BUILD_BENCH=OFF -DHIVE_BUILD_EXAMPLES=OFF
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS)

test-tsan:
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHIVE_SANITIZE=thread \
	      -DHIVE_BUILD_BENCH=OFF -DHIVE_BUILD_EXAMPLES=OFF
	cmake --build build-tsan -j$(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	    ctest --output-on-failure -j$(JOBS)

test-install: build
	scripts/test-install.sh $(BUILD)

test-bench-smoke: build
	$(BUILD)/bench/hive-bench --quick

# The example servers built with ASan+UBSan and driven by their
# integration tests (tests/servers/*.sh; test-plain runs them unsanitized).
test-servers-asan:
	cmake -S . -B build-srv-asan -DCMAKE_BUILD_TYPE=Debug -DHIVE_SANITIZE=address,undefined
	cmake --build build-srv-asan -j$(JOBS) --target echo http_hello kv echo-load no-uring
	cd build-srv-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -R '^server_'

# libFuzzer on the HTTP and RESP parsers: FUZZ_SECS (15) each in make test,
# ten minutes each with make fuzz (FUZZ_SECS=... to choose).
test-fuzz:
	scripts/fuzz.sh $(FUZZ_SECS) build-fuzz

fuzz: deps
	scripts/fuzz.sh $(if $(filter command line,$(origin FUZZ_SECS)),$(FUZZ_SECS),600) build-fuzz

# make bench: release build, hive and every installed peer, REPEAT runs of
# each workload, one table, raw results and an SVG chart in bench/results/.
bench: deps-bench
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DHIVE_BUILD_TESTS=OFF
	cmake --build build-release -j$(JOBS) --target hive-bench c2c-probe
	perl bench/run.pl --hive build-release/bench/hive-bench --peers $(PEERS) \
	     --repeat $(REPEAT) --build-dir build-release/peers --out bench/results \
	     --chart bench/results/latest.svg $(if $(QUICK),--quick,)
	$(MAKE) --no-print-directory bench-servers

# The servers next to their baselines (nginx, redis-server, an epoll echo
# server) under the same clients: req/s, p50/p99, system calls per request,
# memory per connection; a table, raw lines and a markdown table in
# bench/results/.
bench-servers: deps-servers
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DHIVE_BUILD_TESTS=OFF
	cmake --build build-release -j$(JOBS) --target echo http_hello kv epoll-echo echo-load
	perl bench/servers.pl --build build-release --repeat $(REPEAT) --out bench/results \
	     $(if $(QUICK),--quick,)

clean:
	rm -rf build build-asan build-tsan build-release build-srv-asan build-fuzz
