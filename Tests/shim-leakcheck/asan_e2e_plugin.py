"""A pytest plugin for running Tests/e2e against an AddressSanitizer build (see asan-e2e).

LeakSanitizer only reports when the process exits normally, and the e2e fixture ends drivers it
did not stop itself with SIGKILL and then deletes their log directory. This plugin changes only
that teardown: it sends SIGTERM first and waits for the exit (so LSan runs and writes its report
to the driver's stderr, which is its log file), then keeps a copy of every driver log and records
each exit code in ASAN_E2E_LOG_DIR/exits.tsv. The tests themselves are unchanged.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

LOG_DIR = Path(os.environ.get("ASAN_E2E_LOG_DIR", "/tmp/asan-e2e-logs"))
current_test = "session"
saved = 0


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[-150:]


def _patch(driver_class):
    original_close = driver_class.close

    def close(self):
        global saved
        if getattr(self, "_asan_saved", False):
            return original_close(self)
        self._asan_saved = True
        how = "exited by itself"
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            how = "SIGTERM at teardown"
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                how = "did not exit within 60 s of SIGTERM (killed; no leak report)"
        self._log_file.flush()
        saved += 1
        target = LOG_DIR / f"{saved:03d}-{_safe(current_test)}-{self.log_path.name}"
        shutil.copyfile(self.log_path, target)
        with open(LOG_DIR / "exits.tsv", "a") as exits:
            exits.write(f"{target.name}\t{self.process.returncode}\t{how}\n")
        return original_close(self)

    driver_class.close = close


def pytest_configure(config):
    LOG_DIR.mkdir(parents=True, exist_ok=True)


def pytest_collection_finish(session):
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if path.endswith(os.path.join("e2e", "conftest.py")) and hasattr(module, "Driver"):
            _patch(module.Driver)
            return
    raise RuntimeError("asan_e2e_plugin: Tests/e2e/conftest.py Driver not found; the plugin needs updating")


def pytest_runtest_setup(item):
    global current_test
    current_test = item.nodeid.split("::", 1)[-1]
