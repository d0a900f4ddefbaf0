"""Set-up shared by every test module, run before any of them is imported.

No model hub is reachable from the test machines: with these set, a wrong hub id fails at once instead of
waiting on the network, and transformers never tries to download.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
