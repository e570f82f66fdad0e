"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads from its CI file host.

That host is not reachable here; the standard library's ensurepip provides pip in the fresh venv,
and pip then installs the requested packages (from PyPI, which is reachable). ansible-test passes
get-pip's own options (--no-setuptools, --no-wheel), which plain pip does not know.
"""

import subprocess
import sys

# In a child process: ensurepip disables pip configuration (PIP_CONFIG_FILE) in its own process.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
packages = [a for a in args if not a.startswith("-")]
if packages:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])
