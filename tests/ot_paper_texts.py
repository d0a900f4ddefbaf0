"""Built-in texts for the paper-preset comparison: prose paragraphs of the Python standard library's docstrings.

They ship with every Python, so a fresh CI machine has them without any download. The target is the
paragraphs about files and I/O, the pool every other paragraph.
"""
from __future__ import annotations

from gotd.toy import stdlib_paragraphs

MODULES = ("argparse asyncio base64 bisect calendar collections concurrent.futures contextlib csv datetime "
           "decimal difflib email enum fractions functools glob gzip hashlib heapq hmac html http.client inspect "
           "io ipaddress itertools json logging mailbox math mimetypes multiprocessing operator os pathlib pickle "
           "pprint queue random re sched secrets select selectors shelve shutil signal smtplib socket sqlite3 "
           "ssl statistics string struct subprocess tarfile tempfile textwrap threading time timeit tokenize "
           "traceback typing unittest urllib.parse urllib.request uuid warnings weakref xml.dom xml.etree.ElementTree "
           "zipfile zlib").split()
TARGET_WORDS = ("file", "directory", "path")


def docstring_paragraphs(min_words: int = 8, max_words: int = 250) -> list[str]:
    """The distinct prose paragraphs of :data:`MODULES`' docstrings, in a fixed order."""
    return stdlib_paragraphs(MODULES, min_words=min_words, max_words=max_words)


def paper_texts(max_target: int = 300) -> tuple[list[str], list[str]]:
    """(pool, target): at most ``max_target`` file/I-O paragraphs as the target, the others as the pool."""
    paragraphs = docstring_paragraphs()
    is_target = [any(w in p.lower().split() for w in TARGET_WORDS) for p in paragraphs]
    target = [p for p, t in zip(paragraphs, is_target) if t][:max_target]
    chosen = set(target)
    pool = [p for p in paragraphs if p not in chosen]
    return pool, target
