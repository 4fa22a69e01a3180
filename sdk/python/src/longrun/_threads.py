"""Threads for plain `def` handlers: daemon threads, reused, at most one per handler slot.

A `concurrent.futures.ThreadPoolExecutor` is joined when the interpreter exits, so a
handler that never returns would keep a stopped worker's process alive after its operation
was released; daemon threads do not."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

_Item = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[Any], Any], Any]


class DaemonThreads:
    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def run(self, fn: Callable[[Any], Any], arg: Any) -> asyncio.Future[Any]:
        """`fn(arg)` in a thread; the future (of the running loop) gets its outcome."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            if self._idle == 0 and self._threads < self._size:
                self._threads += 1
                self._idle += 1
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}-{self._threads}", daemon=True
                )
                thread.start()
        self._queue.put((loop, future, fn, arg))
        return future

    def _serve(self) -> None:
        while True:
            loop, future, fn, arg = self._queue.get()
            with self._lock:
                self._idle -= 1
            try:
                if not future.cancelled():
                    try:
                        result = fn(arg)
                    except BaseException as e:  # handed to the loop, as a future would
                        with contextlib.suppress(RuntimeError):  # the loop is closed
                            loop.call_soon_threadsafe(_fail, future, e)
                    else:
                        with contextlib.suppress(RuntimeError):
                            loop.call_soon_threadsafe(_succeed, future, result)
            finally:
                with self._lock:
                    self._idle += 1


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
