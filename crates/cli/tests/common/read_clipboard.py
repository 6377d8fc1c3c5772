# Prints the X CLIPBOARD selection's text of the session's display (empty if nobody owns it), as
# an application in the session would paste it. Runs in the session container on the streamer's
# Python, whose vendored python-xlib must be on PYTHONPATH.
import sys
import time

from Xlib import X, display

screen = display.Display()
window = screen.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
clipboard, utf8, target = (screen.intern_atom(name) for name in ("CLIPBOARD", "UTF8_STRING", "SS_PASTE"))
window.convert_selection(clipboard, utf8, target, X.CurrentTime)
deadline = time.time() + 3
while time.time() < deadline:
    if not screen.pending_events():
        time.sleep(0.05)
        continue
    event = screen.next_event()
    if event.type == X.SelectionNotify:
        if event.property != X.NONE:
            sys.stdout.write(window.get_full_property(target, 0).value.decode())
        sys.exit(0)
sys.exit("no answer from the clipboard's owner")
