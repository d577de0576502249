"""zoo.allocator: large blocks stay mapped (glibc), so freed activations leave the process."""
from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
import torch
from zoo.allocator import keep_large_allocations_mapped

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "on":
    assert keep_large_allocations_mapped()
big = torch.ones(20 << 20, dtype=torch.uint8)
del big  # glibc's default raises its mapping threshold to this block's size here
before = libc.mallinfo2().hblks
block = torch.ones(10 << 20, dtype=torch.uint8)
print(libc.mallinfo2().hblks - before)
"""


def _mapped_blocks_for_a_10_mib_tensor(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_large_tensor_is_mapped_after_a_larger_one_was_freed():
    """After a 20 MiB block is freed, glibc's default serves a 10 MiB tensor from the heap (no new
    mapped block: the threshold rose to 20 MiB); with the threshold fixed at 8 MiB it is mapped."""
    try:
        default = _mapped_blocks_for_a_10_mib_tensor("off")
    except AssertionError as exc:
        if "mallinfo2" in str(exc):
            pytest.skip("not glibc >= 2.33")
        raise
    assert default == 0
    assert _mapped_blocks_for_a_10_mib_tensor("on") == 1


TRIM_PROBE = """
import sys
import torch
from zoo.allocator import keep_large_allocations_mapped, release_free_memory

def rss_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) // 1024

assert keep_large_allocations_mapped()
# 600 blocks of 1 MiB (under the 8 MiB threshold: the heap); every other one is freed while its
# neighbours stay, so the 300 MiB freed are holes between live blocks, never the heap's top, and
# glibc's free() gives none of it back by itself (whatever the heap held before).
blocks = [torch.ones(1 << 20, dtype=torch.uint8) for _ in range(600)]
del blocks[::2]
held = rss_mib()
released = release_free_memory() if sys.argv[1] == "on" else False
print(released, held, rss_mib())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
@pytest.mark.parametrize("mode", ["off", "on"])
def test_freed_heap_blocks_leave_the_process_once_released(mode):
    """300 MiB freed into holes between live blocks stay resident until release_free_memory."""
    done = subprocess.run([sys.executable, "-c", TRIM_PROBE, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    released, held, after = done.stdout.split()
    if mode == "off":
        assert after == held or abs(int(after) - int(held)) < 20
    else:
        assert released == "True" and int(held) - int(after) > 250


def test_the_trainer_releases_freed_memory_while_a_cpu_run_fits(monkeypatch, tmp_path):
    """The callback is in every run's Trainer; on CPU a background thread releases freed memory
    while the run fits (and stops with it), and each training step and validation releases it
    once more; on a GPU it does nothing."""
    import time
    from types import SimpleNamespace

    import zoo.trainer.memory as memory
    from zoo.config import load_config
    from zoo.registry import get_registry
    from zoo.trainer import build_trainer

    calls = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append(1) or True)
    resident = {"bytes": 1 << 30}
    monkeypatch.setattr(memory, "resident_bytes", lambda: resident["bytes"])
    cpu = SimpleNamespace(strategy=SimpleNamespace(root_device=SimpleNamespace(type="cpu")))
    gpu = SimpleNamespace(strategy=SimpleNamespace(root_device=SimpleNamespace(type="cuda")))

    on_gpu = memory.ReleaseFreedMemory(interval=0.01)
    on_gpu.on_fit_start(gpu, None)
    on_gpu.on_train_batch_end(gpu, None, None, None, 0)
    assert on_gpu._thread is None and not calls

    callback = memory.ReleaseFreedMemory(interval=0.01)
    callback.on_fit_start(cpu, None)
    assert callback._thread is not None and callback._thread.is_alive()
    resident["bytes"] += 200 << 20  # within the slack (256 MiB): left alone
    time.sleep(0.1)
    assert len(calls) == 1  # the glibc probe only
    for grown in range(1, 4):  # it grows past the slack three times: one release each
        resident["bytes"] += 300 << 20
        deadline = time.monotonic() + 10
        while len(calls) < 1 + grown and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        assert len(calls) == 1 + grown
    callback.on_fit_end(cpu, None)
    assert callback._thread is None
    stopped = len(calls)
    time.sleep(0.05)
    assert len(calls) == stopped
    callback.on_train_batch_end(cpu, None, None, None, 0)
    callback.on_validation_end(cpu, None)
    assert len(calls) == stopped + 2

    config = load_config(raw={"algorithm": "sft", "model": {"name": "tiny"}, "data": {"train": "builtin:tiny_sft"},
                              "train": {"progress_bar": False}, "output_dir": str(tmp_path)})
    trainer = build_trainer(config, get_registry().algorithm("sft"), tmp_path)
    assert any(isinstance(c, memory.ReleaseFreedMemory) for c in trainer.callbacks)
