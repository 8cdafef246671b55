"""What every frame hook shares: outputs, batching, counters and lifetime.

An XDP hook and an skb hook differ in how they build a context and read a verdict; how frames
reach them (in batches, lazily), where the result goes (one :class:`FrameSink` per output) and
what closing means (flush the sinks, release the runners' native buffers) is the same, and lives
here once so that a fix to one is a fix to both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Generic, Self, TypeVar

from pybpf.hooks.errors import HookError
from pybpf.hooks.outputs import FrameSink
from pybpf.hooks.packet import Frame, batched

__all__ = ["FrameHook"]

OutcomeT = TypeVar("OutcomeT")
StatsT = TypeVar("StatsT")


class FrameHook(Generic[OutcomeT, StatsT]):
    """Base of :class:`~pybpf.hooks.xdp.XdpHook` and :class:`~pybpf.hooks.tc.SkbHook`.

    Subclasses set ``outputs``, ``stats`` and ``runner`` and implement :meth:`run_batch`.
    """

    outputs: dict[str, FrameSink | None]
    stats: StatsT
    runner: Any

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise HookError(f"batch size must be at least 1, not {batch_size}")
        self.batch_size = batch_size

    # -- running ---------------------------------------------------------------------------------
    def run_batch(self, batch: list[Frame]) -> list[OutcomeT]:
        """Run one batch of frames now (the live hook calls this with whatever has arrived)."""
        raise NotImplementedError

    def process(self, frames: Iterable[Frame]) -> Iterator[OutcomeT]:
        """Run every frame, deliver it to its output and yield what became of it (lazily)."""
        for batch in batched(frames, self.batch_size):
            yield from self.run_batch(batch)

    def run(self, frames: Iterable[Frame]) -> StatsT:
        """Run every frame; returns the counters (also ``self.stats``)."""
        for _ in self.process(frames):
            pass
        return self.stats

    def _emit(self, output: str, data: bytes, frame: Frame, ifindex: int) -> None:
        sink = self.outputs.get(output)
        if sink is not None:
            sink.emit(data, ts_ns=frame.ts_ns, ifindex=ifindex)

    # -- lifetime --------------------------------------------------------------------------------
    def _runners(self) -> Iterable[Any]:
        """Every runner this hook created (their native buffers are released on close)."""
        return (self.runner,)

    def close(self) -> None:
        """Close every output (flushes capture files) and release the runners' buffers."""
        for sink in self.outputs.values():
            if sink is not None:
                sink.close()
        for runner in self._runners():
            close = getattr(runner, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
