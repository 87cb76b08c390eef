"""titans3.objects.admission: what a write stream is charged, and that concurrent
PUTs through a store share the budget (all-or-nothing, none left waiting)."""

from __future__ import annotations

import hashlib

import trio

from titans3.core.config import Config
from titans3.core.membudget import MemoryBudget
from titans3.drive.direct import WRITE_BUFFER
from titans3.erasure.codec import ECScheme
from titans3.objects.admission import WriteAdmission, from_config

from .test_store import SEG, body, read_all, run

MiB = 1 << 20


def test_a_large_stream_is_charged_two_segments_their_fragments_writer_buffers_and_read_ahead() -> None:
    adm = WriteAdmission(MemoryBudget(0), request_buffer=4 * MiB)
    sch = ECScheme(4, 2, MiB)
    want = 2 * MiB + 6 * (MiB // 4) + 6 * WRITE_BUFFER + 4 * MiB
    assert adm.cost(sch, 64 * MiB, inline_max=128 << 10) == want
    assert adm.cost(sch, None, inline_max=128 << 10) == want  # unknown length: the same


def test_a_small_inline_stream_is_charged_for_its_own_size_only() -> None:
    adm = WriteAdmission(MemoryBudget(0), request_buffer=4 * MiB)
    sch = ECScheme(4, 2, MiB)
    cost = adm.cost(sch, 4096, inline_max=128 << 10)
    assert cost == 4096 + 6 * 1024 + 4096
    # the same size not inline (inline off) also needs the writers' buffers
    assert adm.cost(sch, 4096, inline_max=-1) == cost + 6 * WRITE_BUFFER


def test_the_host_admission_comes_from_config() -> None:
    adm = from_config(Config(write_memory_mb=64, http_body_queue=2, http_recv_bytes=MiB))
    assert adm.budget.capacity == 64 * MiB
    assert adm.request_buffer == 4 * MiB
    assert from_config(Config(write_memory_mb=0)).budget.capacity == 0


@run
async def test_concurrent_puts_share_a_small_budget_and_all_land(store, drives) -> None:
    budget = MemoryBudget(int(2.5 * (2 * SEG + 6 * SEG // 4 + 6 * WRITE_BUFFER)))
    store.admission = WriteAdmission(budget)
    datas = {i: hashlib.sha256(bytes([i])).digest() * (SEG // 8) for i in range(8)}  # 4 segments

    async def put(i: int) -> None:
        await store.put_object("bkt", f"k{i}", body(datas[i]), size=len(datas[i]))

    async with trio.open_nursery() as nursery:
        for i in datas:
            nursery.start_soon(put, i)
    st = budget.stats()
    assert st.waited > 0, "the budget admitted every stream at once: the test proves nothing"
    assert st.peak <= budget.capacity and st.in_use == 0 and st.waiting == 0
    for i, data in datas.items():
        assert await read_all(store, "bkt", f"k{i}") == data
