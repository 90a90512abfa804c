# partlink: the front door.  `make demo` and `make test` build whatever is
# missing first; each step below is incremental.

BUILD      := $(CURDIR)/build
MESON_DIR  := $(BUILD)/meson
QEMU_BIN   := $(BUILD)/qemu/qemu-system-x86_64
PARTLINK   := $(BUILD)/bin/partlink
PYTHON     := /usr/bin/python3
PYTEST_ARGS ?=
SEED       ?= 1
N          ?= 10000
FUZZ_ARGS  ?=

.PHONY: all deps qemu qemu-asan images driver shim demo demo-wlm bench bench-devloop test unit-test pytest device-test device-test-asan fuzz system-test lint format clean distclean help

all: qemu images shim

help:
	@echo "make deps         install the Debian packages everything needs (root)"
	@echo "make qemu         build QEMU with the partlink-pci device -> $(QEMU_BIN)"
	@echo "make images       build the guest kernel, initramfs and partlink.ko -> build/images/"
	@echo "make driver       rebuild partlink.ko (incrementally) for the kernel the partitions run"
	@echo "                  (of build/run, or RUN_DIR=DIR)"
	@echo "                  -> build/driver/<release>/partlink.ko"
	@echo "make shim         build the partlink launcher -> $(PARTLINK)"
	@echo "make demo         build what is missing, boot 2 guests, ping/iperf3/ssh between them"
	@echo "make demo-wlm     3 guests: a load step on vm2, the WLM manager shifts CPU to it"
	@echo "make test         unit tests, device tests and whole-system tests"
	@echo "make device-test-asan  the device tests against QEMU built with AddressSanitizer"
	@echo "make fuzz SEED=1 N=100000  seeded random qtest fuzzer of partlink-pci, ASan QEMU"
	@echo "make bench        guest-to-guest TCP, UDP and RTT per network mode, side by side"
	@echo "make bench-devloop  edit -> make driver && driver reload (3 partitions), partlink run"
	@echo "make lint         QEMU and kernel checkpatch, clang-format check"
	@echo "make clean        remove build/ except the QEMU source and ccache-able QEMU build"

deps:
	@scripts/deps.sh

qemu: deps
	@scripts/build-qemu.sh $(BUILD)

# The same QEMU with AddressSanitizer, for the device tests (build/qemu-asan).
qemu-asan: deps
	@QEMU_VARIANT=asan scripts/build-qemu.sh $(BUILD)

images: deps shim
	@scripts/build-images.sh $(BUILD)

# partlink.ko for the kernel in build/run/kdir (the one `partlink up` booted),
# else the image's Debian kernel.  No deps: this is the edit-compile loop.
driver:
	@scripts/build-driver.sh --build-dir $(BUILD) $(if $(RUN_DIR),--run-dir $(RUN_DIR))

shim: deps
	@test -f $(MESON_DIR)/build.ninja || \
		meson setup $(MESON_DIR) --prefix=$(BUILD) --bindir=bin --buildtype=debugoptimized
	@meson compile -C $(MESON_DIR)
	@meson install -C $(MESON_DIR) --quiet

demo: all
	@scripts/demo.sh

# Three guests, the WLM manager shifting CPU after a load step on vm2,
# against the same run with the manager in --dry-run.
demo-wlm: all
	@scripts/demo-wlm.py

bench: all
	@$(PYTHON) scripts/bench.py $(BENCH_ARGS)

# The kernel-developer loop's two times: edit -> make driver && driver reload
# in 3 running partitions, and a one-shot `partlink run -- uname -r`.
bench-devloop: all
	@$(PYTHON) scripts/bench-devloop.py $(BENCH_ARGS)

test: all
	@$(MAKE) --no-print-directory unit-test pytest

unit-test:
	meson test -C $(MESON_DIR) --print-errorlogs

# Device tests (qtest, no guest), whole-system tests and the scripts' tests
# in one pytest run.
pytest:
	$(PYTHON) -m pytest tests/device tests/system tests/tools $(PYTEST_ARGS)

device-test:
	$(PYTHON) -m pytest tests/device $(PYTEST_ARGS)

# Hostile descriptors against an ASan QEMU: an out-of-bounds access aborts
# QEMU, and the test that caused it fails.
device-test-asan: qemu-asan shim
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	PARTLINK_QEMU=$(BUILD)/qemu-asan/qemu-system-x86_64 \
		$(PYTHON) -m pytest tests/device $(PYTEST_ARGS)

# The seeded random qtest fuzzer (tests/device/fuzz_partlink.py) for N cases
# against the ASan QEMU; a failure prints the command that reruns its case
# alone, and the exit status is non-zero.  FUZZ_ARGS: e.g. --start 5000.
fuzz: qemu-asan shim
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	PARTLINK_QEMU=$(BUILD)/qemu-asan/qemu-system-x86_64 \
		$(PYTHON) tests/device/fuzz_partlink.py --asan --seed $(SEED) --cases $(N) $(FUZZ_ARGS)

system-test:
	$(PYTHON) -m pytest tests/system $(PYTEST_ARGS)

lint:
	@scripts/lint.sh

format:
	@find hypervisor-shim guest-driver/wlm -name '*.cpp' -o -name '*.hpp' | \
		xargs -r clang-format -i

clean:
	rm -rf $(MESON_DIR) $(BUILD)/bin $(BUILD)/images $(BUILD)/run

distclean:
	rm -rf $(BUILD)
