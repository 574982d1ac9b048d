"""A/B variant: the store writer's serialisation, compression and SQLite run in a child process (own GIL);
the request event carries no full state (the response/error event does)."""
import multiprocessing as mp
import pickle
import threading

from proxycap.addons import recorder

import proxycap.session as session
import proxycap.writer as writer
from proxycap.store import Store


def request(self, f):
    self._publish("request", f, with_state=False)


recorder.Recorder.request = request


def _child(path, conn):
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    store = Store(path)
    try:
        while True:
            msg = conn.recv_bytes()
            if msg == b"stop":
                return
            flows, logs, clients = pickle.loads(msg)
            store.write(flows, logs, clients)
    finally:
        store.close()


class ProcWriter:
    def __init__(self, store, bus):
        self.store = store
        self.sub = bus.subscribe("store-writer", with_state=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proxycap-store-writer", daemon=True)
        parent, child = mp.get_context("fork").Pipe()
        self._conn = parent
        self._proc = mp.get_context("fork").Process(target=_child, args=(str(store.path), child), daemon=True)

    def start(self):
        self._proc.start()
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()
        self._conn.send_bytes(b"stop")
        self._proc.join(30)
        self.sub.close()
        self.store.close()

    def _run(self):
        while True:
            stopping = self._stop.wait(writer.BATCH_INTERVAL)
            events = self.sub.drain(writer.MAX_BATCH)
            if events:
                self._send(events)
            if stopping and not self.sub.queue:
                return

    def _send(self, events):
        self._conn.send_bytes(pickle.dumps(writer.collapse(events), 5))

session.StoreWriter = ProcWriter
