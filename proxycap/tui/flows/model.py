"""The flow list's model: which flows the current view shows, in what order, and their rows.

A view is an array of row ids (``seq``) in ascending sort order; descending just reads it backwards, so
flipping the direction costs nothing. Rows are fetched from the store only for the window on screen and
kept in an LRU cache. Live updates never rescan: they follow what the store committed (``Committed``): new flows
are the store's rows past ``last_seq`` that match the view, and a committed row that is cached is fetched again.
Pure logic (no Textual widgets), so it is testable against a real store without a UI.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable

from textual.cache import LRUCache

from proxycap.capture.bus import Committed
from proxycap.query.views import Found, Row, ViewSpec
from proxycap.storage.store import Store

# What a view can be sorted by: the list's columns, in the order the sort key cycles through them.
SORT_COLUMNS: tuple[str, ...] = (
    "seq",
    "ts",
    "client_ip",
    "method",
    "host",
    "path",
    "status",
    "content_type",
    "response_size",
    "duration_ms",
)


@dataclasses.dataclass(slots=True)
class Change:
    """How an update changed the view, so the list can keep its cursor and scroll position."""

    added: int = 0
    appended: bool = True  # all additions are at the end of the ascending order (the "newest" edge)
    reset: bool = False


class FlowView:
    """The current view's row ids, its row cache, and the bookkeeping that keeps both live."""

    def __init__(self, store: Store, cache_size: int = 5000) -> None:
        self.store = store
        self.spec = ViewSpec()
        self.generation = 0  # bumped on every spec change; results of older workers are dropped
        self.loading = True  # the current generation's first load has not arrived yet
        self.last_seq = 0  # every row up to here has been considered for this view
        self.unsorted = False  # rows were appended out of order (non-seq sort) and need a resort
        self.frozen = False  # display paused: cached rows stay as they are
        self.undecided: set[str] = set()  # live flows an expression did not match yet
        self.recheck: set[str] = set()  # ... and that have finished since: scan them again
        # Every flow of a store without gaps is a range: O(1) to clear a filter, and no memory for 100k+ ids.
        self._seqs: list[int] | range = []
        self._cache: LRUCache[int, Row] = LRUCache(cache_size)

    # --- the index ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._seqs)

    def seq_at(self, index: int) -> int:
        return self._seqs[-1 - index] if self.spec.descending else self._seqs[index]

    def index_of(self, seq: int) -> int | None:
        """Display index of a row id (binary search in seq order, a scan otherwise)."""
        if self.spec.order == "seq":
            i = bisect.bisect_left(self._seqs, seq)
            found = i < len(self._seqs) and self._seqs[i] == seq
        else:
            try:
                i, found = self._seqs.index(seq), True
            except ValueError:
                found = False
        return self._display_index(i) if found else None

    def nearest(self, seq: int) -> int | None:
        """Display index of the last row at or before row id ``seq`` (the first row if none is); capture order
        only (None otherwise, or for an empty view)."""
        if self.spec.order != "seq" or not self._seqs:
            return None
        return self._display_index(max(0, bisect.bisect_right(self._seqs, seq) - 1))

    def _display_index(self, i: int) -> int:
        """Where the ``i``-th row id (ascending) shows: the other end first in a descending view."""
        return len(self._seqs) - 1 - i if self.spec.descending else i

    def snapshot(self) -> list[int]:
        """The ids in ascending order, for workers (a copy: the view keeps changing)."""
        return list(self._seqs)

    def begin(self, spec: ViewSpec, force: bool = False) -> bool:
        """Switch to ``spec``; returns True if the rows must be loaded again (not for a direction flip)."""
        same_rows = dataclasses.replace(spec, descending=self.spec.descending) == self.spec
        self.spec = spec
        if same_rows and not self.loading and not force:
            return False
        self.generation += 1
        self.loading = True
        self.unsorted = False
        self.undecided.clear()
        self.recheck.clear()
        return True

    def apply(self, batch: Found) -> Change:
        """Take a load or scan result for the current generation. Its ``undecided`` flows were live when the scan
        read them; the caller asks the store which of them have finished since (``finished``)."""
        self.undecided |= batch.undecided
        if batch.done:
            self.loading = False
        if batch.reset:
            self.last_seq = batch.last_seq
            self._seqs = batch.seqs if isinstance(batch.seqs, range) else list(batch.seqs)
            self.unsorted = False
            return Change(len(batch.seqs), appended=False, reset=True)
        self.last_seq = max(self.last_seq, batch.last_seq)
        return self._insert(batch.seqs)

    def _insert(self, new: list[int]) -> Change:
        if not new:
            return Change()
        seqs = self._seqs
        if isinstance(seqs, range):
            if self.spec.order == "seq" and (not seqs or new[0] == seqs.stop) and new[-1] - new[0] == len(new) - 1:
                self._seqs = range(seqs.start if seqs else new[0], new[-1] + 1)  # the next flows: still a range
                return Change(len(new))
            seqs = self._seqs = list(seqs)
        if self.spec.order != "seq":
            seqs.extend(new)
            self.unsorted = True
            return Change(len(new))
        appended = True
        for s in new:
            if not seqs or s > seqs[-1]:
                seqs.append(s)
            else:
                bisect.insort(seqs, s)
                appended = False
        return Change(len(new), appended=appended)

    def apply_resort(self, ordered: list[int]) -> Change:
        """Take a resort result; rows added or removed meanwhile are kept or dropped."""
        current = set(self._seqs)
        ordered = [s for s in ordered if s in current]
        placed = set(ordered)
        extra = [s for s in self._seqs if s not in placed]
        self._seqs = ordered + extra
        self.unsorted = bool(extra)
        return Change(0, appended=False, reset=True)

    def remove(self, seqs: Iterable[int]) -> bool:
        """Drop deleted rows; True if the view held any of them."""
        gone = set(seqs)
        for s in gone:
            self._cache.discard(s)
        kept = [s for s in self._seqs if s not in gone]
        if len(kept) == len(self._seqs):
            return False
        self._seqs = kept
        return True

    # --- rows -----------------------------------------------------------------------------------

    def row(self, index: int) -> Row | None:
        """The row at a display index, fetching the window around it from the store on a miss."""
        seq = self.seq_at(index)
        row = self._cache.get(seq)
        if row is None:
            self.fetch(index - 64, index + 128)
            row = self._cache.get(seq)
        return row

    def cached(self, seq: int) -> Row | None:
        return self._cache.get(seq)

    def fetch(self, start: int, end: int) -> None:
        """Load the uncached rows of a display range in one query."""
        start, end = max(0, start), min(len(self._seqs), end)
        missing = [s for s in (self.seq_at(i) for i in range(start, end)) if s not in self._cache]
        if missing:
            for seq, row in self.store.rows(missing).items():
                self._cache[seq] = row

    def committed(self, event: Committed) -> set[int]:
        """Take what the store committed: cached rows it changed are dropped, to be fetched again when shown
        (returns their row ids; none while paused: the screen holds still), and undecided flows it finished are
        rechecked. New rows and deletions are the caller's (``discover_sql``, ``remove``)."""
        self.finished(flow_id for flow_id, _, state in event.flows if state != "live")
        if self.frozen:
            return set()
        changed = {seq for _, seq, _ in event.flows if seq in self._cache}
        changed.update(seq for seq in event.edited if seq in self._cache)
        for seq in changed:
            self._cache.discard(seq)
        return changed

    def finished(self, flow_ids: Iterable[str]) -> None:
        """These flows are no longer live: those an expression left undecided are checked again."""
        if moved := self.undecided.intersection(flow_ids):
            self.undecided -= moved
            self.recheck |= moved

    def thaw(self) -> None:
        """Resume after a pause: rows cached meanwhile may be out of date."""
        self.frozen = False
        self.invalidate()

    def set_marked(self, seqs: Iterable[int], marked: bool) -> None:
        for s in seqs:
            if (row := self._cache.get(s)) is not None:
                row["marked"] = int(marked)

    def invalidate(self) -> None:
        """Forget every cached row (after missing events): they are fetched again when shown."""
        self._cache.clear()
