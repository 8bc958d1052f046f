"""The CEP operator core: Flink's `CepOperator` as an `EventTimeLogic`.

Plain Python, no Bytewax (the wiring is `operators/cep/wiring.py`).

Event time (default). An element with a timestamp at or below the current
watermark is late and goes to the `late` port as `(key, element)`. Others are
buffered; when the watermark advances, buffered elements with timestamps at or
below it are fed to their key's NFA in timestamp order, ties in arrival order,
and then every key whose oldest partial match has reached `within` is advanced
to the watermark, timing out partial matches (Flink's `onEventTime`). At
`MAX_WATERMARK` everything buffered is matched, every partial match with a
window times out, and matches held back by a skip strategy are emitted.

Processing time (`processing_time=True`). Elements are matched on arrival
with the injected clock's time as their timestamp; `within` counts
processing time and timers time out partial matches. The end of input only
releases matches held back by a skip strategy.

Ports: `down` carries `(key, match)` (or `(key, select(key, match))`),
`timed_out` carries `(key, partial match)` (or `(key,
select_timed_out(key, partial, timeout_ts))`), `late` carries `(key,
element)`, and `errors` carries `(key, element or match, message)` when a
user condition or select function raises, so one bad element never stops the
stream (the NFA state is left as it was before that element).
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any, Callable, Iterable, Iterator, Optional

from operators.cep.nfa import KeyState, Match, NFA, compile_pattern, export_states, import_states
from operators.cep.patterns import Pattern
from operators.time.eventtime import Clock, EventTimeLogic, MAX_WATERMARK

PORTS = ("down", "late", "timed_out", "errors")

Select = Callable[[str, Match], Any]
SelectTimedOut = Callable[[str, Match, int], Any]
Enrich = Callable[[str, Any, dict[str, Any]], Any]
"""`(key, element, key context) -> element to match`: runs for every element
in the order the NFA sees it (timestamp order in event time), before
matching, with a per-key dict kept in the operator's snapshot. It lets
conditions use facts about all earlier events of the key, which a pattern
alone cannot see (e.g. "a location this user never used before")."""


class CepOperator(EventTimeLogic[Any]):
    """Matches `pattern` per key; one instance holds all keys of one shard."""

    state_kind = "buffered_events_and_partial_matches"

    def __init__(
        self,
        pattern: Pattern,
        *,
        select: Optional[Select] = None,
        select_timed_out: Optional[SelectTimedOut] = None,
        processing_time: bool = False,
        clock: Optional[Clock] = None,
        enrich: Optional[Enrich] = None,
    ) -> None:
        super().__init__()
        if processing_time and clock is None:
            raise ValueError("processing-time CEP needs a clock")
        self.nfa = NFA(compile_pattern(pattern))
        self.select = select
        self.select_timed_out = select_timed_out
        self.processing_time = processing_time
        self.clock = clock
        self.states: dict[str, KeyState] = {}
        self.enrich = enrich
        self.context: dict[str, dict[str, Any]] = {}
        self.buffer: list[tuple[int, int, str, Any]] = []
        self.timers: list[tuple[int, str]] = []
        self.arrivals = 0
        self.seq = 0

    # ---- EventTimeLogic ---------------------------------------------------------

    def on_element(self, key: str, ts: int, value: Any, side: int = 0) -> None:
        if self.processing_time:
            assert self.clock is not None
            now = self.clock()
            self._advance_due(now)
            self._feed(((now, 0, key, value),))
        elif ts <= self.watermark:
            self.emitted.append(("late", (key, value)))
        else:
            heappush(self.buffer, (ts, self.arrivals, key, value))
            self.arrivals += 1

    def on_watermark(self, wm: int) -> None:
        self.watermark = wm
        if self.processing_time:
            if wm == MAX_WATERMARK:
                self._finish(wm, timeouts=False)
            return
        buffer = self.buffer
        if buffer and buffer[0][0] <= wm:
            self._feed(_pop_until(buffer, wm))
        if wm == MAX_WATERMARK:
            self._finish(wm, timeouts=True)
        elif self.timers and self.timers[0][0] <= wm:
            self._advance_due(wm)

    def next_event_time(self) -> Optional[int]:
        """The lowest watermark at which buffered elements are matched or a
        partial match times out. Matching depends on the watermark's path: a
        trailing `not_followed_by` match that completes at a watermark at its
        window's end prunes, by the skip strategy, partial matches a later
        watermark would have timed out first. So the wiring steps CEP along
        the watermark values a batch passed (`EventTimeLogic.advance`), as
        Flink's per-event watermarks would, rather than letting it jump."""
        if self.processing_time:
            return None
        timer = self._next_timer()
        buffer = self.buffer
        if buffer and (timer is None or buffer[0][0] <= timer):
            return buffer[0][0]
        return timer

    def on_processing_time(self, now_ms: int) -> None:
        if self.processing_time:
            self._advance_due(now_ms)

    def next_processing_time(self) -> Optional[int]:
        return self._next_timer() if self.processing_time else None

    def snapshot(self) -> Any:
        return {
            "signature": self.nfa.compiled.signature,
            "watermark": self.watermark,
            "buffer": list(self.buffer),
            "timers": list(self.timers),
            "arrivals": self.arrivals,
            "seq": self.seq,
            "states": export_states(self.states),
            "context": self.context,
        }

    def restore(self, state: Any) -> None:
        if state["signature"] != self.nfa.compiled.signature:
            raise ValueError(
                "CEP state was written for a different pattern sequence; "
                f"saved {state['signature']!r}, now {self.nfa.compiled.signature!r}"
            )
        self.watermark = state["watermark"]
        self.buffer = list(state["buffer"])
        self.timers = list(state["timers"])
        self.arrivals = state["arrivals"]
        self.seq = state["seq"]
        self.states = import_states(state["states"])
        self.context = state["context"]

    def state_size(self) -> int:
        return len(self.buffer) + sum(st.size() for st in self.states.values())

    # ---- matching ----------------------------------------------------------------

    def _feed(self, elements: Iterable[tuple[int, int, str, Any]]) -> None:
        """Feed `(ts, arrival, key, element)` in order to their keys' NFAs and
        emit what they produced. The per-element hot path of the operator."""
        nfa = self.nfa
        process = nfa.process
        states = self.states
        timers = self.timers
        window = nfa.window
        seq = self.seq
        enrich = self.enrich
        for ts, _, key, value in elements:
            if enrich is not None:
                try:
                    value = enrich(key, value, self.context.setdefault(key, {}))
                except Exception as exc:  # a user enrich function failed on this element
                    self.emitted.append(("errors", (key, value, f"enrich raised {exc!r}")))
                    continue
            st = states.get(key)
            try:
                new = process(st, value, ts, seq)
            except Exception as exc:  # a user condition failed on this element
                self.emitted.append(("errors", (key, value, f"condition raised {exc!r}")))
                new = st if st is not None and st.size() else None
            seq += 1
            if new is not st:
                if new is None:
                    del states[key]
                else:
                    states[key] = new
            if nfa.started and window is not None:
                heappush(timers, (ts + window, key))
            if nfa.matches or nfa.timed_out:
                self._emit(key)
        self.seq = seq

    def _advance_due(self, now: int) -> None:
        """Advance every key whose oldest partial match is due at `now`."""
        timers = self.timers
        while timers and timers[0][0] <= now:
            _, key = heappop(timers)
            st = self.states.get(key)
            if st is not None and self._due(key, now):
                self._advance(key, st, now)

    def _next_timer(self) -> Optional[int]:
        """The earliest timer whose partial match is still open; others are
        dropped (a partial match started later has a timer of its own)."""
        timers = self.timers
        while timers and not self._due(timers[0][1], timers[0][0]):
            heappop(timers)
        return timers[0][0] if timers else None

    def _due(self, key: str, now: int) -> bool:
        st = self.states.get(key)
        window = self.nfa.window
        return bool(st is not None and st.partials and window is not None and now - st.partials[0][3] >= window)

    def _advance(self, key: str, st: KeyState, now: int) -> None:
        new = self.nfa.advance_time(st, now, 2 * self.seq)
        if new is None:
            del self.states[key]
        self._emit(key)

    def _finish(self, wm: int, timeouts: bool) -> None:
        """End of input: in event time, time out what has a window; emit
        matches a skip strategy still holds back."""
        nfa = self.nfa
        for key in list(self.states):
            st: Optional[KeyState] = self.states[key]
            assert st is not None
            if timeouts and nfa.window is not None:
                st = nfa.advance_time(st, wm, 2 * self.seq)
            if st is not None:
                st = nfa.flush(st)
            if st is None:
                del self.states[key]
            self._emit(key)
        self.timers.clear()

    def _emit(self, key: str) -> None:
        nfa = self.nfa
        emitted = self.emitted
        if nfa.matches:
            select = self.select
            for m in nfa.matches:
                if select is None:
                    emitted.append(("down", (key, m)))
                    continue
                try:
                    emitted.append(("down", (key, select(key, m))))
                except Exception as exc:
                    emitted.append(("errors", (key, m, f"select raised {exc!r}")))
            nfa.matches.clear()
        if nfa.timed_out:
            select_timed_out = self.select_timed_out
            for partial, timeout_ts in nfa.timed_out:
                if select_timed_out is None:
                    emitted.append(("timed_out", (key, partial)))
                    continue
                try:
                    emitted.append(("timed_out", (key, select_timed_out(key, partial, timeout_ts))))
                except Exception as exc:
                    emitted.append(("errors", (key, partial, f"select_timed_out raised {exc!r}")))
            nfa.timed_out.clear()


def _pop_until(buffer: list[tuple[int, int, str, Any]], wm: int) -> Iterator[tuple[int, int, str, Any]]:
    """Buffered elements with timestamps at or below `wm`, in (ts, arrival) order."""
    while buffer and buffer[0][0] <= wm:
        yield heappop(buffer)
