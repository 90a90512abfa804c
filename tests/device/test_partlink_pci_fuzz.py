"""A short, fixed slice of the random qtest fuzzer (fuzz_partlink.py), so
that every `make test` and `make device-test-asan` runs it: two QEMUs on
a real partlinkd, a few hundred random cases of hostile registers, rings,
descriptors and doorbells, and the fuzzer's oracle after each (both QEMUs
alive, guest RAM outside rings and posted buffers untouched, handed-back
entries sane, copies equal to packets received).

`make fuzz SEED=1 N=100000` runs the long version against the ASan QEMU;
a failing case reruns alone with the command the failure prints.
"""

from fuzz_partlink import Fuzzer, rerun_command

SEED = 20261204
CASES = 300


def test_fuzz_slice(tmp_path):
    with Fuzzer(SEED, report_dir=tmp_path) as fz:
        failures = fz.run(range(CASES), max_failures=3)
    assert not failures, "\n\n".join(
        f"seed {f['seed']} case {f['case']}: {f['kind']}: {f['message'][:3000]}\n"
        f"  operations: {f['ops']}\n  report: {f['report']}\n  rerun: {rerun_command(f)}"
        for f in failures)
    assert fz.stats["delivered"] > CASES // 2, "the slice hardly used the data path"
