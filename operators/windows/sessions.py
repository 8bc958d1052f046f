"""The fast engine for event-time sessions with the event-time trigger; see
`SessionsEngine`."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, TypeVar

from operators.time.eventtime import WatermarkPath
from operators.time.timer_wheel import TimerWheel
from operators.windows.assigners import InvalidElement, SessionWindows, Window
from operators.windows.operator import WindowOperator
from operators.windows.results import _FIRST, WindowResult, _new_tuple

V = TypeVar("V")

Session = tuple[int, int, Any]
"""One open session: (start, end, accumulator)."""


class SessionsEngine(WindowOperator[V]):
    """Event-time sessions with the event-time trigger.

    State: one dict entry per key holding the time the key is scheduled for
    (`due`) and its sessions: the tuple `(due, start, end, acc)` for the usual
    single open session, the list `[due, (start, end, acc), ...]` sorted by
    start when disorder left several apart. One lookup per element, and plain
    tuples the garbage collector untracks.

    A session's next action is its firing at `end - 1` while the watermark is
    below that, then its cleanup `allowed_lateness` later. Each key is
    scheduled once, at or before the earliest next action of its sessions;
    extending a session does not touch the schedule: when a key comes due its
    sessions are checked and the key rescheduled. A session fires when its
    key is processed at its max timestamp. Keys wait in a `TimerWheel`.

    `advance_deferred` only moves the watermark; the keys it makes due are
    processed by `flush`, or by the key's next element before that element
    (`_catch_up`). With a million keys nearly every element makes some other
    key's session due, and one pass per batch costs far less than one per
    element.

    Supersession: a session the watermark has passed has had a result in its
    current form (once its key is caught up), so one that a late element
    extends or merges replaces the result of each such session it absorbed.
    When the merged session still lies ahead of the watermark, those windows
    wait in `_replaced` (key -> windows, usually empty) until it fires.

    Gaps follow `SessionWindows.gap`, computed inline (a method call per
    element would cost the hot path); `choose_engine` runs an assigner that
    overrides it on the general engine.
    """

    engine_id = "sessions"

    assigner: SessionWindows

    def __init__(self, assigner: SessionWindows, **kwargs: Any) -> None:
        super().__init__(assigner, **kwargs)
        self._gap_ms = assigner.gap_ms
        self._gap_of = assigner.gap_of
        self._keys: dict[str, Any] = {}
        self._timers = TimerWheel()
        self._count = 0
        self._deferred: Optional[Sequence[int]] = None
        """The steps of the path `advance_deferred` moved along, while firings wait."""
        self._replaced: dict[str, list[Window]] = {}
        """Fired windows absorbed into a session of the key that has not fired yet."""

    def on_element(self, key: str, ts: int, value: V, side: int = 0) -> None:
        gap = self._gap_ms
        if gap is None:  # SessionWindows.gap, inline
            try:
                gap = self._gap_of(value)
            except Exception:
                gap = None
            if gap.__class__ is not int or gap <= 0:  # type: ignore[operator]
                self._invalid(key, value)
                return
        end = ts + gap  # type: ignore[operator]
        wm = self.watermark
        state = self._keys.get(key)
        if state is not None and state[0] <= wm:
            state = self._catch_up(key, state, wm, WatermarkPath(wm, self._deferred or ()).at_any)
        if state is None:
            if end - 1 + self.allowed_lateness_ms <= wm:
                self.emitted.append(("late", (key, value)))
                return
            acc = self._add(self._create(), value)
            self._count += 1
            self._keys[key] = (self._touched(key, None, ts, end, acc, wm, _FIRST), ts, end, acc)
            return
        single = state.__class__ is tuple
        if single:
            due, start, stop, acc = state
        else:
            due = state[0]
            start, stop, acc = state[-1]
        # The usual element: it touches the last session and no other (before
        # the last one, sessions end before `ts`).
        if start <= end and ts <= stop and (single or ts > state[-2][1]):
            fired = None if stop - 1 > wm else (_new_tuple(Window, (start, stop)),)
            if ts < start:
                start = ts
            if end > stop:
                stop = end
            acc = self._add(acc, value)
            if fired is not None:
                due = self._touched(key, due, start, stop, acc, wm, fired)
            if single:
                self._keys[key] = (due, start, stop, acc)
            else:
                state[0] = due
                state[-1] = (start, stop, acc)
            return
        self._insert(key, state, ts, end, value, wm)

    def _invalid(self, key: str, value: V) -> None:
        """Report an element whose dynamic gap is unusable, with the reason
        `SessionWindows.gap` gives."""
        try:
            self.assigner.gap(value)
            reason = "session gap extractor is not deterministic"
        except InvalidElement as ex:
            reason = str(ex)
        self.emitted.append(("invalid", (key, (value, reason))))

    def _insert(self, key: str, state: Any, start: int, end: int, value: V, wm: int) -> None:
        """Add `[start, end)` to a key's sessions, merging those it touches."""
        due: int = state[0]
        hits: list[Session] = []
        sessions: list[Session] = []
        for s in [state[1:]] if state.__class__ is tuple else state[1:]:
            (hits if s[0] <= end and start <= s[1] else sessions).append(s)
        fired = _FIRST
        if hits:
            acc = hits[0][2]
            for other in hits[1:]:
                acc = self._merge(acc, other[2])
            start = min(start, hits[0][0])
            end = max(end, hits[-1][1])
            self._count -= len(hits) - 1
            fired = tuple(_new_tuple(Window, (s[0], s[1])) for s in hits if s[1] - 1 <= wm)
        elif end - 1 + self.allowed_lateness_ms <= wm:
            self.emitted.append(("late", (key, value)))
            return
        else:
            acc = self._create()
            self._count += 1
        acc = self._add(acc, value)
        sessions.append((start, end, acc))
        sessions.sort(key=_session_start)
        self._store(key, self._touched(key, due, start, end, acc, wm, fired), sessions)

    def _store(self, key: str, due: Optional[int], sessions: list[Session]) -> None:
        if not sessions:
            del self._keys[key]
        elif len(sessions) == 1:
            self._keys[key] = (due, *sessions[0])
        else:
            self._keys[key] = [due, *sessions]

    def _touched(
        self, key: str, due: Optional[int], start: int, end: int, acc: Any, wm: int, fired: tuple[Window, ...]
    ) -> int:
        """After an element: fire a session the watermark has passed, replacing
        the results of the `fired` sessions it absorbed (else remember them
        for its firing); return the key's due time, scheduling the key earlier
        if the session's next action comes before `due`."""
        max_ts = end - 1
        if max_ts > wm:
            action = max_ts
            if fired:
                self._replaced.setdefault(key, []).extend(fired)
        else:
            self._emit(key, start, end, acc, fired, wm)
            action = max_ts + self.allowed_lateness_ms
        if due is None or action < due:
            self._timers.add(action, key)
            return action
        return due

    def next_event_time(self) -> Optional[int]:
        return self._timers.earliest()

    def advance(self, wm: int, steps: Sequence[int] = ()) -> None:
        if self._deferred is not None:
            self.flush()
        self.watermark = wm
        if self._timers.low <= wm:
            self._fire_due(wm, steps)

    def advance_deferred(self, wm: int, steps: Sequence[int]) -> None:
        if self._deferred is not steps:
            if self._deferred is not None:
                self.flush()
            self._deferred = steps
        self.watermark = wm

    def flush(self) -> None:
        """Fire what `advance_deferred` put off: every timer at the value of
        the path an `advance` call per step would have fired it at, since the
        watermarks passed were all values of the same steps."""
        steps = self._deferred
        if steps is not None:
            self._deferred = None
            if self._timers.low <= self.watermark:
                self._fire_due(self.watermark, steps)

    def _catch_up(self, key: str, state: Any, wm: int, at: Callable[[int], int]) -> Any:
        """Take every action of a key due by `wm`, a firing at `t` reporting
        watermark `at(t)`; return the key's state after. Timers this leaves
        behind are skipped when popped (the key's due time moved on)."""
        while state is not None and state[0] <= wm:
            t = state[0]
            self._process_sessions(key, [state[1:]] if state.__class__ is tuple else state[1:], t, at(t))
            state = self._keys.get(key)
        return state

    def _advance(self, wm: int, path: Optional[WatermarkPath]) -> None:
        """Process every key due by `wm`, in time order, taking all its
        actions up to `wm` at once: fire its sessions ending at a due time,
        free those whose cleanup time has come, reschedule the key at its
        first action after `wm`. Keys are independent, so this fires what one
        pass per due time would. A key with one session is handled here;
        `_catch_up` handles the rest."""
        states = self._keys
        lateness = self.allowed_lateness_ms
        replaced = self._replaced
        result = None if self.process is not None else self._result
        append = self.emitted.append
        add = self._timers.add
        at: Callable[[int], int] = (lambda t: wm) if path is None else path.at_any
        for t, key in self._timers.pop_due(wm):
            state = states.get(key)
            if state is None or state[0] != t:
                continue  # rescheduled or gone
            if state.__class__ is not tuple:
                self._catch_up(key, state, wm, at)
                continue
            _, start, end, acc = state
            max_ts = end - 1
            if max_ts > t:  # scheduled before the session was extended
                if max_ts > wm:
                    states[key] = (max_ts, start, end, acc)
                    add(max_ts, key)
                    continue
                t = max_ts
            if max_ts == t:
                fired = self._superseded(key, start, end) if replaced else _FIRST
                if result is None:
                    self._emit(key, start, end, acc, fired, at(t))
                else:
                    append(("down", (key, _new_tuple(WindowResult, (key, start, end, result(acc), fired, at(t))))))
            cleanup = max_ts + lateness
            if cleanup <= wm:
                del states[key]
                self._count -= 1
            else:
                states[key] = (cleanup, start, end, acc)
                add(cleanup, key)

    def _process_sessions(self, key: str, sessions: list[Session], t: int, wm: int) -> None:
        """Process a key's sessions at its due time `t` (firings report watermark
        `wm`): fire those ending at `t`, free those past cleanup, reschedule."""
        lateness = self.allowed_lateness_ms
        kept: list[Session] = []
        nxt: Optional[int] = None
        for session in sessions:
            start, end, acc = session
            max_ts = end - 1
            if max_ts == t:
                self._emit(key, start, end, acc, self._superseded(key, start, end) if self._replaced else _FIRST, wm)
            if max_ts + lateness <= t:
                continue
            kept.append(session)
            action = max_ts if max_ts > t else max_ts + lateness
            if nxt is None or action < nxt:
                nxt = action
        self._count -= len(sessions) - len(kept)
        self._store(key, nxt, kept)
        if nxt is not None:
            self._timers.add(nxt, key)

    def _superseded(self, key: str, start: int, end: int) -> tuple[Window, ...]:
        """Take the key's remembered fired windows inside `[start, end)`."""
        windows = self._replaced.get(key)
        if windows is None:
            return _FIRST
        inside = [w for w in windows if start <= w[0] and w[1] <= end]
        if inside:
            rest = [w for w in windows if not (start <= w[0] and w[1] <= end)]
            if rest:
                self._replaced[key] = rest
            else:
                del self._replaced[key]
        return tuple(sorted(inside))

    def snapshot(self) -> Any:
        return self._tagged((self._keys, self._count, self._replaced))

    def restore(self, state: Any) -> None:
        """Timers are rebuilt from each key's due time, not snapshotted.
        Format 1 did not remember fired windows absorbed into a session still
        ahead of the watermark: such a session's result lists none of them."""
        saved, version = self._untagged(state)
        if version == 1:
            (self._keys, self._count), self._replaced = saved, {}
        else:
            self._keys, self._count, self._replaced = saved
        self._timers = TimerWheel()
        for key, sessions in self._keys.items():
            self._timers.add(sessions[0], key)
        self._deferred = None

    def state_size(self) -> int:
        return self._count


def _session_start(s: Session) -> int:
    return s[0]

