"""A/B variant for `proxycap tui` (proposals P1, P3, P4, P5 in bench/RESULTS.md): the capture session (engine +
store writer) runs in a forked child process with its own GIL, started before Textual is imported; the UI process
gets flow summaries (no full state) over a pipe and republishes them on its own bus; the UI ticks at 4 Hz; the
request event carries no full state (the response/error event does)."""
import multiprocessing as mp
import pickle
import threading

from proxycap.addons import recorder

import proxycap.cli as cli
from proxycap.bus import Bus, FlowEvent
from proxycap.engine import EngineError
from proxycap.session import CaptureSession

FORWARD_INTERVAL = 0.05


def request(self, f):
    self._publish("request", f, with_state=False)


recorder.Recorder.request = request


def _child(config, store_path, log_file, conn):
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    session = CaptureSession(config, store_path, log_file)
    sub = session.bus.subscribe("ui-pipe", limit=50_000)
    try:
        session.start()
    except Exception as e:
        conn.send(("error", str(e)))
        return
    conn.send(("ok", session.engine.listen_addrs))
    stop = threading.Event()

    def forward():
        while not stop.wait(FORWARD_INTERVAL):
            events = sub.drain()
            if events:
                out = [FlowEvent(e.kind, e.flow_id, e.summary) if isinstance(e, FlowEvent) else e for e in events]
                conn.send_bytes(pickle.dumps(out, 5))

    t = threading.Thread(target=forward, daemon=True)
    t.start()
    while conn.recv_bytes() != b"stop":
        pass
    stop.set()
    t.join()
    n = session.stop()
    conn.send_bytes(pickle.dumps(("stopped", n)))


class _Engine:
    def __init__(self):
        self.listen_addrs = []


class SplitSession:
    def __init__(self, config, store_path, log_file):
        self.config, self.store_path, self.log_file = config, store_path, log_file
        self.bus = Bus()
        self.engine = _Engine()
        self._conn = None
        self._proc = None

    def start(self):
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(self.config, self.store_path, self.log_file, child), daemon=True)
        self._proc.start()
        kind, value = parent.recv()
        if kind == "error":
            raise EngineError(value)
        self.engine.listen_addrs = value
        self._conn = parent
        self._done = threading.Event()
        self._result = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                msg = pickle.loads(self._conn.recv_bytes())
            except (EOFError, OSError):
                break
            if isinstance(msg, tuple):
                self._result = msg[1]
                break
            for ev in msg:
                self.bus.publish(ev)
        self._done.set()

    def stop(self):
        if self._conn is None:
            return 0
        self._conn.send_bytes(b"stop")
        self._done.wait(30)
        self._proc.join(30)
        return self._result


TICK = 0.25
ORIGINAL_CMD_TUI = cli.cmd_tui


def cmd_tui(args):
    """Start the proxy (in its child process) before importing Textual, then run the UI."""
    from proxycap.paths import default_log_file, default_store

    if args.open is not None:
        return ORIGINAL_CMD_TUI(args)
    session = SplitSession(cli.engine_config(args), args.store or default_store(), args.log_file or default_log_file())
    session.start()
    try:
        import proxycap.tui.app as tui_app

        if TICK:
            tui_app.TICK = TICK
        tui_app.ProxycapApp(session.store_path, session, client=args.client).run()
    finally:
        session.stop()
    return 0


cli.cmd_tui = cmd_tui
