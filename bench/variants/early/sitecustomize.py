"""A/B variant for `proxycap tui`: start the capture session before importing Textual (same process)."""
import proxycap.cli as cli


def cmd_tui(args):
    from proxycap.paths import default_log_file, default_store
    from proxycap.session import CaptureSession

    if args.open is not None:
        from proxycap.tui.app import run_tui

        return run_tui(args, cli.engine_config(args))
    store, log_file = args.store or default_store(), args.log_file or default_log_file()
    session = CaptureSession(cli.engine_config(args), store, log_file)
    session.start()
    try:
        from proxycap.tui.app import ProxycapApp

        ProxycapApp(session.store_path, session, client=args.client).run()
    finally:
        session.stop()
    return 0


cli.cmd_tui = cmd_tui
